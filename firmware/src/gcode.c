/* gcode.c: the G-code subset of the stage (G0 G1 G4 G90 G91 G21 G17 G54 G94, F, M280) and its checks. */
#include <math.h>
#include <string.h>
#include "gcode.h"
#include "motion.h"
#include "settings.h"
#include "status.h"

gc_state_t gc;

#define MAX_INT_DIGITS 9
#define MAX_DWELL_S 600.0f
#define MAX_TARGET_STEPS 2000000000.0f

static const float pow10_table[] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f, 1e6f, 1e7f, 1e8f, 1e9f};

uint8_t gc_read_float(const char *line, uint8_t *i, float *value)
{
    uint8_t k = *i, negative = 0, int_digits = 0, frac_digits = 0, dot = 0, any = 0;
    uint32_t mantissa = 0;
    if (line[k] == '-' || line[k] == '+') {
        negative = (line[k] == '-');
        k++;
    }
    for (;; k++) {
        char c = line[k];
        if (c >= '0' && c <= '9') {
            any = 1;
            if (!dot) {
                if (mantissa == 0 && c == '0') continue;   /* leading zeros do not count */
                if (++int_digits > MAX_INT_DIGITS) return 0;
                mantissa = mantissa * 10u + (uint32_t)(c - '0');
            } else if (int_digits + frac_digits < MAX_INT_DIGITS) {
                mantissa = mantissa * 10u + (uint32_t)(c - '0');
                frac_digits++;
            }   /* digits beyond nine significant ones are read and dropped */
        } else if (c == '.' && !dot) {
            dot = 1;
        } else {
            break;
        }
    }
    if (!any) {
        return 0;
    }
    float v = (float)mantissa / pow10_table[frac_digits];
    *value = negative ? -v : v;
    *i = k;
    return 1;
}

void gc_init(void)
{
    memset(&gc, 0, sizeof(gc));
    gc.motion = MOTION_SEEK;
}

void gc_sync_position(const int32_t steps[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        gc.position[a] = (float)steps[a] / settings.steps_per_mm[a];
    }
}

static uint8_t parse_g(gc_block_t *b, float value)
{
    if (!(value >= 0.0f && value <= 99.0f) || value != (float)(uint8_t)value) {
        return STATUS_UNSUPPORTED_COMMAND;   /* G38.2, G200, G-1 ... (range first: the cast needs it) */
    }
    uint8_t code = (uint8_t)value;
    switch (code) {
    case 0:
    case 1:
        if (b->motion != 0xFF) return STATUS_MODAL_GROUP_VIOLATION;
        b->motion = code;
        return STATUS_OK;
    case 4:
        if (b->nonmodal != GC_NONE) return STATUS_MODAL_GROUP_VIOLATION;
        b->nonmodal = GC_DWELL;
        return STATUS_OK;
    case 90:
    case 91:
        if (b->distance != DIST_UNSET) return STATUS_MODAL_GROUP_VIOLATION;
        b->distance = code == 90 ? DIST_ABSOLUTE : DIST_RELATIVE;
        return STATUS_OK;
    case 17:   /* XY plane, mm, G54, units per minute: the only modes there are; accepted for GRBL hosts */
    case 21:
    case 54:
    case 94:
        return STATUS_OK;
    default:
        return STATUS_UNSUPPORTED_COMMAND;
    }
}

static uint8_t parse_word(gc_block_t *b, char letter, float value)
{
    static const char letters[] = "XYZFPSN";
    const char *at = strchr(letters, letter);
    if (at == NULL || letter == '\0') {
        return STATUS_UNSUPPORTED_COMMAND;
    }
    uint8_t bit = (uint8_t)(1u << (at - letters));
    if (b->words & bit) {
        return STATUS_WORD_REPEATED;
    }
    b->words |= bit;
    switch (letter) {
    case 'F':
        if (value < 0.0f) return STATUS_NEGATIVE_VALUE;
        b->f = value;
        break;
    case 'P': b->p = value; break;
    case 'S': b->s = value; break;
    case 'N':
        if (value < 0.0f || value > 9999999.0f || value != (float)(uint32_t)value) {
            return STATUS_INVALID_LINE_NUMBER;
        }
        break;
    default:
        b->xyz[at - letters] = value;
    }
    return STATUS_OK;
}

static uint8_t check_block(const gc_block_t *b)
{
    uint8_t has_axes = b->words & WORD_AXES;
    if (b->nonmodal == GC_DWELL && b->m280) return STATUS_MODAL_GROUP_VIOLATION;   /* both would take P */
    if ((b->nonmodal == GC_DWELL || b->m280) && has_axes) return STATUS_AXIS_COMMAND_CONFLICT;
    if (b->nonmodal == GC_DWELL) {
        if (!(b->words & WORD_P)) return STATUS_VALUE_WORD_MISSING;
        if (b->p < 0.0f) return STATUS_NEGATIVE_VALUE;
        if (b->p > MAX_DWELL_S) return STATUS_MAX_VALUE_EXCEEDED;
    }
    if (b->m280) {
        if (!(b->words & WORD_P) || !(b->words & WORD_S)) return STATUS_VALUE_WORD_MISSING;
        if (b->p != (float)(int32_t)b->p) return STATUS_COMMAND_VALUE_NOT_INTEGER;
        if (b->p != 0.0f) return STATUS_UNSUPPORTED_COMMAND;   /* one servo, index 0 */
        if (b->s < 0.0f || b->s > 180.0f) return STATUS_INVALID_TARGET;
    }
    if ((b->words & WORD_P) && b->nonmodal != GC_DWELL && !b->m280) return STATUS_UNUSED_WORDS;
    if ((b->words & WORD_S) && !b->m280) return STATUS_UNUSED_WORDS;
    return STATUS_OK;
}

uint8_t gc_parse_line(const char *line, gc_block_t *b)
{
    memset(b, 0, sizeof(*b));
    b->motion = 0xFF;
    uint8_t i = 0;
    while (line[i] != '\0') {
        char letter = line[i];
        if (letter < 'A' || letter > 'Z') {
            return STATUS_EXPECTED_COMMAND_LETTER;
        }
        i++;
        float value;
        if (!gc_read_float(line, &i, &value)) {
            return STATUS_BAD_NUMBER_FORMAT;
        }
        uint8_t status;
        if (letter == 'G') {
            status = parse_g(b, value);
        } else if (letter == 'M') {
            if (value != 280.0f) {
                status = STATUS_UNSUPPORTED_COMMAND;
            } else {
                status = b->m280 ? STATUS_MODAL_GROUP_VIOLATION : STATUS_OK;
                b->m280 = 1;
            }
        } else {
            status = parse_word(b, letter, value);
        }
        if (status != STATUS_OK) {
            return status;
        }
    }
    return check_block(b);
}

static uint8_t target_steps(const gc_block_t *b, uint8_t relative, float target_mm[N_AXIS],
                            int32_t steps[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        target_mm[a] = gc.position[a];
        if (b->words & (1u << a)) {
            target_mm[a] = relative ? gc.position[a] + b->xyz[a] : b->xyz[a];
        }
        float s = roundf(target_mm[a] * settings.steps_per_mm[a]);
        if (!(fabsf(s) < MAX_TARGET_STEPS)) {
            return STATUS_INVALID_TARGET;
        }
        steps[a] = (int32_t)s;
    }
    return STATUS_OK;
}

static uint8_t within_travel(const float target_mm[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        /* half a step of slack so a target written from a reported position is never refused */
        float slack = 0.5f / settings.steps_per_mm[a];
        if (target_mm[a] < -slack || target_mm[a] > settings.max_travel[a] + slack) {
            return 0;
        }
    }
    return 1;
}

static uint8_t execute_motion(const gc_block_t *b)
{
    uint8_t relative = b->distance == DIST_UNSET ? gc.relative : (b->distance == DIST_RELATIVE);
    float target_mm[N_AXIS];
    int32_t steps[N_AXIS];
    uint8_t status = target_steps(b, relative, target_mm, steps);
    if (status != STATUS_OK) {
        return status;
    }
    uint8_t motion = b->motion == 0xFF ? gc.motion : b->motion;
    float feed = (b->words & WORD_F) ? b->f : gc.feed;
    if (motion == MOTION_LINEAR && feed <= 0.0f) {
        return STATUS_UNDEFINED_FEED_RATE;
    }
    if ((settings.flags & FLAG_SOFT_LIMITS) && !within_travel(target_mm)) {
        return STATUS_TRAVEL_EXCEEDED;
    }
    status = mc_line(steps, feed, motion == MOTION_SEEK);
    if (status == STATUS_OK) {
        memcpy(gc.position, target_mm, sizeof(target_mm));
    }
    return status;
}

static void apply_modes(const gc_block_t *b)
{
    if (b->distance != DIST_UNSET) gc.relative = (b->distance == DIST_RELATIVE);
    if (b->motion != 0xFF) gc.motion = b->motion;
    if (b->words & WORD_F) gc.feed = b->f;
}

uint8_t gc_execute_line(const char *line)
{
    gc_block_t b;
    uint8_t status = gc_parse_line(line, &b);
    if (status != STATUS_OK) {
        return status;
    }
    if (b.words & WORD_AXES) {
        /* check the move before any mode of the line takes effect, so a refused line changes nothing */
        status = execute_motion(&b);
        if (status != STATUS_OK) {
            return status;
        }
        apply_modes(&b);
        return STATUS_OK;
    }
    if (b.motion == MOTION_LINEAR && b.words & WORD_F && b.f <= 0.0f) {
        return STATUS_UNDEFINED_FEED_RATE;
    }
    apply_modes(&b);
    if (b.nonmodal == GC_DWELL) {
        return mc_dwell(b.p);
    }
    if (b.m280) {
        return mc_servo(b.s);
    }
    return STATUS_OK;
}
