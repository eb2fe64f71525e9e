/* gcode.c: the G-code of the stage (G0 G1 G4 G10 G17 G20(jog) G21 G28 G30 G40 G43.1 G49 G53 G54-G59 G61 G80 G90
 * G91 G92 G94, F, M0 M1 M2 M5 M9 M30 M280) and GRBL 1.1's $J= jog body. Every line is parsed and checked whole
 * before anything changes. */
#include <math.h>
#include <string.h>
#include "coords.h"
#include "gcode.h"
#include "motion.h"
#include "settings.h"
#include "status.h"

gc_state_t gc;

#define MAX_INT_DIGITS 9
#define MAX_DWELL_S 600.0f
/* Every target lies within +-1e9 steps, so every move, the difference of two targets, fits in 31 bits: the
 * planner's step counts and the Bresenham sums in the step interrupt never overflow. */
#define MAX_TARGET_STEPS 1.0e9f
#define MM_PER_INCH 25.4f

enum { AXIS_CMD_NONE = 0, AXIS_CMD_MOTION, AXIS_CMD_NONMODAL, AXIS_CMD_TLO };

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
    coords_read(0, gc.coord_system);   /* G54; a damaged record reads as zero */
    gc.wco_changed = 1;
}

void gc_sync_position(const int32_t steps[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        gc.position[a] = (float)steps[a] / settings.steps_per_mm[a];
    }
}

void gc_wco(float wco[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) wco[a] = gc.coord_system[a] + gc.g92[a];
    wco[Z_AXIS] += gc.tlo;
}

/* ---- parsing ---------------------------------------------------------------------------------------------- */

typedef struct {
    gc_block_t *b;
    uint8_t axis_cmd;   /* AXIS_CMD_*: which command the axis words belong to */
} parser_t;

static uint8_t set_once(uint8_t *field, uint8_t unset, uint8_t value)
{
    if (*field != unset) return STATUS_MODAL_GROUP_VIOLATION;
    *field = value;
    return STATUS_OK;
}

/* A modal group with a single mode: named at most once per line (GRBL's modal group violation otherwise). */
static uint8_t set_noop(gc_block_t *b, uint8_t group)
{
    if (b->noop & group) return STATUS_MODAL_GROUP_VIOLATION;
    b->noop |= group;
    return STATUS_OK;
}

static uint8_t claim_axes(parser_t *p, uint8_t kind)
{
    if (p->axis_cmd != AXIS_CMD_NONE) return STATUS_AXIS_COMMAND_CONFLICT;
    p->axis_cmd = kind;
    return STATUS_OK;
}

/* G-codes with a decimal part: G28.1, G30.1, G92.1, G43.1. */
static uint8_t parse_g_decimal(parser_t *p, uint8_t code, uint8_t mantissa)
{
    gc_block_t *b = p->b;
    if (mantissa != 10) return STATUS_UNSUPPORTED_COMMAND;
    switch (code) {
    case 28: return set_once(&b->nonmodal, GC_NONE, GC_SET_HOME_0);
    case 30: return set_once(&b->nonmodal, GC_NONE, GC_SET_HOME_1);
    case 92: return set_once(&b->nonmodal, GC_NONE, GC_RESET_OFFSET);
    case 43: {
        uint8_t s = set_once(&b->tlo, TLO_UNSET, TLO_DYNAMIC);
        return s != STATUS_OK ? s : claim_axes(p, AXIS_CMD_TLO);
    }
    default: return STATUS_UNSUPPORTED_COMMAND;
    }
}

static uint8_t parse_nonmodal_axis_user(parser_t *p, uint8_t what)
{
    uint8_t s = set_once(&p->b->nonmodal, GC_NONE, what);
    return s != STATUS_OK ? s : claim_axes(p, AXIS_CMD_NONMODAL);
}

static uint8_t parse_g_integer(parser_t *p, uint8_t code)
{
    gc_block_t *b = p->b;
    switch (code) {
    case 0:
    case 1: {
        uint8_t s = set_once(&b->motion, 0xFF, code);
        return s != STATUS_OK ? s : claim_axes(p, AXIS_CMD_MOTION);
    }
    case 4: return set_once(&b->nonmodal, GC_NONE, GC_DWELL);
    case 10: return parse_nonmodal_axis_user(p, GC_SET_COORD);
    case 28: return parse_nonmodal_axis_user(p, GC_GO_HOME_0);
    case 30: return parse_nonmodal_axis_user(p, GC_GO_HOME_1);
    case 92: return parse_nonmodal_axis_user(p, GC_SET_OFFSET);
    case 53: return set_once(&b->nonmodal, GC_NONE, GC_MACHINE_COORDS);
    case 20:
    case 21: return set_once(&b->units, UNITS_UNSET, code == 21 ? UNITS_MM : UNITS_INCH);
    case 49: {
        uint8_t s = set_once(&b->tlo, TLO_UNSET, TLO_CANCEL);
        return s != STATUS_OK ? s : claim_axes(p, AXIS_CMD_TLO);
    }
    case 90:
    case 91: return set_once(&b->distance, DIST_UNSET, code == 90 ? DIST_ABSOLUTE : DIST_RELATIVE);
    case 80: return set_once(&b->motion, 0xFF, MOTION_NONE);   /* motion cancel: axis words are then refused */
    /* XY plane, units per minute, no cutter compensation, exact path: the only modes there are */
    case 17: return set_noop(b, NOOP_PLANE);
    case 94: return set_noop(b, NOOP_FEED);
    case 40: return set_noop(b, NOOP_CUTTER);
    case 61: return set_noop(b, NOOP_PATH);
    default:
        if (code >= 54 && code <= 59) return set_once(&b->coord_select, 0xFF, (uint8_t)(code - 54));
        return STATUS_UNSUPPORTED_COMMAND;
    }
}

static uint8_t parse_g(parser_t *p, float value)
{
    if (!(value >= 0.0f && value < 100.0f)) {
        return STATUS_UNSUPPORTED_COMMAND;   /* G200, G-1 ... (range first: the cast needs it) */
    }
    uint8_t code = (uint8_t)value;
    uint8_t mantissa = (uint8_t)lroundf((value - (float)code) * 100.0f);   /* 10 for G43.1, as GRBL */
    if (mantissa == 0) return parse_g_integer(p, code);
    if (code == 28 || code == 30 || code == 92 || code == 43) return parse_g_decimal(p, code, mantissa);
    if (code <= 1 || code == 4 || code == 10 || code == 17 || code == 20 || code == 21 || code == 40 || code == 49 ||
        code == 53 || (code >= 54 && code <= 59) || code == 80 || code == 90 || code == 91 || code == 94) {
        return STATUS_COMMAND_VALUE_NOT_INTEGER;   /* G1.5 ... */
    }
    return STATUS_UNSUPPORTED_COMMAND;   /* G38.2, G61.1 (as GRBL) ... */
}

static uint8_t parse_word(gc_block_t *b, char letter, float value)
{
    static const char letters[] = "XYZFPSNL";
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
    case 'L': b->l = value; break;
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

/* M0/M1/M2/M30 (program flow, one group), M5 and M9 (spindle and coolant off: the stage has neither, so off is
 * their only state, as $G reports), M280 (the servo). M3, M4, M7 and M8 would switch on what is not there. */
static uint8_t parse_m(gc_block_t *b, float value)
{
    if (!(value >= 0.0f && value < 1000.0f)) return STATUS_UNSUPPORTED_COMMAND;
    uint16_t code = (uint16_t)value;
    if ((float)code != value) return STATUS_COMMAND_VALUE_NOT_INTEGER;   /* M2.5: GRBL's "no Mxx.x" */
    switch (code) {
    case 0:
    case 1:
    case 2:
    case 30: return set_once(&b->flow, FLOW_NONE, (uint8_t)code);
    case 5: return set_noop(b, NOOP_SPINDLE);
    case 9: return set_noop(b, NOOP_COOLANT);
    case 280:
        if (b->m280) return STATUS_MODAL_GROUP_VIOLATION;
        b->m280 = 1;
        return STATUS_OK;
    default: return STATUS_UNSUPPORTED_COMMAND;
    }
}

static uint8_t check_dwell_servo(const gc_block_t *b)
{
    uint8_t has_axes = b->words & WORD_AXES;
    uint8_t takes_p = b->nonmodal == GC_DWELL || b->nonmodal == GC_SET_COORD;
    if (takes_p && b->m280) return STATUS_MODAL_GROUP_VIOLATION;   /* both would take P */
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
    return STATUS_OK;
}

static uint8_t check_offsets(const gc_block_t *b)
{
    uint8_t axes = b->words & WORD_AXES;
    if (b->nonmodal == GC_SET_COORD) {
        if (!axes) return STATUS_NO_AXIS_WORDS;
        if ((b->words & (WORD_P | WORD_L)) != (WORD_P | WORD_L)) return STATUS_VALUE_WORD_MISSING;
        if (b->l != 2.0f && b->l != 20.0f) return STATUS_UNSUPPORTED_COMMAND;
        if (b->p < 0.0f) return STATUS_NEGATIVE_VALUE;
        if (b->p != (float)(int32_t)b->p) return STATUS_COMMAND_VALUE_NOT_INTEGER;
        if (b->p > (float)N_COORD_SYSTEMS) return STATUS_UNSUPPORTED_COORD_SYS;
    }
    if (b->nonmodal == GC_SET_OFFSET && !axes) return STATUS_NO_AXIS_WORDS;
    if (b->tlo != TLO_UNSET && axes != (b->tlo == TLO_DYNAMIC ? WORD_Z : 0)) return STATUS_G43_DYNAMIC_AXIS_ERROR;
    return STATUS_OK;
}

static uint8_t check_unused(const gc_block_t *b)
{
    uint8_t p_users = b->nonmodal == GC_DWELL || b->nonmodal == GC_SET_COORD || b->m280;
    if ((b->words & WORD_P) && !p_users) return STATUS_UNUSED_WORDS;
    if ((b->words & WORD_S) && !b->m280) return STATUS_UNUSED_WORDS;
    if ((b->words & WORD_L) && b->nonmodal != GC_SET_COORD) return STATUS_UNUSED_WORDS;
    return STATUS_OK;
}

/* GRBL 1.1's jog rules: only G90/G91, G20/G21 and G53 may appear, F is required. */
static uint8_t check_jog(const gc_block_t *b)
{
    if (b->motion != 0xFF || b->tlo != TLO_UNSET || b->coord_select != 0xFF || b->m280 || b->flow != FLOW_NONE ||
        b->noop ||
        !(b->nonmodal == GC_NONE || b->nonmodal == GC_MACHINE_COORDS)) {
        return STATUS_INVALID_JOG_COMMAND;
    }
    if (!(b->words & WORD_F)) return STATUS_UNDEFINED_FEED_RATE;
    if (b->words & (WORD_P | WORD_S | WORD_L)) return STATUS_UNUSED_WORDS;
    return STATUS_OK;
}

static uint8_t check_block(const gc_block_t *b)
{
    if (b->jog) return check_jog(b);
    if (b->units == UNITS_INCH) return STATUS_UNSUPPORTED_COMMAND;   /* millimetres only, outside a jog */
    uint8_t s = check_dwell_servo(b);
    if (s == STATUS_OK) s = check_offsets(b);
    if (s == STATUS_OK) s = check_unused(b);
    return s;
}

uint8_t gc_parse_line(const char *line, gc_block_t *b, uint8_t jog)
{
    memset(b, 0, sizeof(*b));
    b->motion = 0xFF;
    b->coord_select = 0xFF;
    b->flow = FLOW_NONE;
    b->jog = jog;
    parser_t p = {b, AXIS_CMD_NONE};
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
        if (letter == 'G') status = parse_g(&p, value);
        else if (letter == 'M') status = parse_m(b, value);
        else status = parse_word(b, letter, value);
        if (status != STATUS_OK) {
            return status;
        }
    }
    return check_block(b);
}

/* ---- checking the targets --------------------------------------------------------------------------------- */

typedef struct {
    uint8_t relative;              /* G91 in force for this line */
    uint8_t machine;               /* G53: axis words are machine coordinates */
    float scale;                   /* mm per unit of the line (25.4 for G20 in a jog) */
    float coord[N_AXIS];           /* the G54..G59 offset the line works in */
    float g92[N_AXIS];
    float tlo;
} frame_t;

/* The machine position (mm) the axis words of the line name; the other axes stay where they are. */
static void target_mm(const gc_block_t *b, const frame_t *f, float out[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        out[a] = gc.position[a];
        if (!(b->words & (1u << a))) continue;
        float v = b->xyz[a] * f->scale;
        if (f->machine) out[a] = v;
        else if (f->relative) out[a] = gc.position[a] + v;
        else out[a] = v + f->coord[a] + f->g92[a] + (a == Z_AXIS ? f->tlo : 0.0f);
    }
}

static uint8_t within_travel(const float mm[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        /* half a step of slack so a target written from a reported position is never refused */
        float slack = 0.5f / settings.steps_per_mm[a];
        if (mm[a] < -slack || mm[a] > settings.max_travel[a] + slack) {
            return 0;
        }
    }
    return 1;
}

/* Steps of a target, refused when out of range (error:33) or, with soft limits on, beyond travel (error:15). */
static uint8_t to_steps(const float mm[N_AXIS], int32_t steps[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        float s = roundf(mm[a] * settings.steps_per_mm[a]);
        if (!(fabsf(s) <= MAX_TARGET_STEPS)) {
            return STATUS_INVALID_TARGET;
        }
        steps[a] = (int32_t)s;
    }
    return STATUS_OK;
}

static uint8_t check_travel(const float mm[N_AXIS])
{
    return (settings.flags & FLAG_SOFT_LIMITS) && !within_travel(mm) ? STATUS_TRAVEL_EXCEEDED : STATUS_OK;
}

/* ---- executing ---------------------------------------------------------------------------------------------- */

/* Everything a line will change, worked out before any of it is applied. */
typedef struct {
    frame_t frame;
    uint8_t motion;
    uint8_t coord_select;
    float feed;
    uint8_t moves;                 /* 0, 1 (a move) or 2 (G28/G30: intermediate point, then the stored one) */
    float via[N_AXIS];             /* the first move's target (mm) */
    float to[N_AXIS];              /* the last move's target (mm) */
    int32_t via_steps[N_AXIS], to_steps[N_AXIS];
    uint8_t store_index;           /* coordinate record to write, 0xFF for none */
    float store[N_AXIS];
} plan_t;

static uint8_t load_frame(const gc_block_t *b, plan_t *pl)
{
    frame_t *f = &pl->frame;
    f->relative = b->distance == DIST_UNSET ? gc.relative : (b->distance == DIST_RELATIVE);
    f->machine = b->nonmodal == GC_MACHINE_COORDS;
    f->scale = b->units == UNITS_INCH ? MM_PER_INCH : 1.0f;
    memcpy(f->g92, gc.g92, sizeof(f->g92));
    f->tlo = gc.tlo;
    pl->coord_select = gc.coord_select;
    memcpy(f->coord, gc.coord_system, sizeof(f->coord));
    if (b->coord_select != 0xFF) {
        pl->coord_select = b->coord_select;
        if (!coords_read(b->coord_select, f->coord)) return STATUS_SETTING_READ_FAIL;
    }
    pl->motion = b->motion == 0xFF ? gc.motion : b->motion;
    pl->feed = (b->words & WORD_F) ? b->f * f->scale : gc.feed;
    pl->store_index = 0xFF;
    return STATUS_OK;
}

/* G10 L2 / L20: the new record, in machine mm. */
static uint8_t plan_set_coord(const gc_block_t *b, plan_t *pl)
{
    uint8_t p = (uint8_t)b->p;
    uint8_t index = p == 0 ? pl->coord_select : (uint8_t)(p - 1);
    if (!coords_read(index, pl->store)) return STATUS_SETTING_READ_FAIL;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (!(b->words & (1u << a))) continue;
        if (b->l == 20.0f) {   /* make the current position read as the value: WCS = MPos - G92 - TLO - value */
            pl->store[a] = gc.position[a] - gc.g92[a] - (a == Z_AXIS ? gc.tlo : 0.0f) - b->xyz[a];
        } else {
            pl->store[a] = b->xyz[a];
        }
    }
    pl->store_index = index;
    if (index == pl->coord_select) memcpy(pl->frame.coord, pl->store, sizeof(pl->store));
    return STATUS_OK;
}

/* G92: offset so the current position reads as the value: G92 = MPos - WCS - TLO - value. */
static void plan_set_offset(const gc_block_t *b, plan_t *pl)
{
    frame_t *f = &pl->frame;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (b->words & (1u << a)) {
            f->g92[a] = gc.position[a] - f->coord[a] - (a == Z_AXIS ? f->tlo : 0.0f) - b->xyz[a];
        }
    }
}

/* G28 / G30: through the axis words' point (if any) to the stored position of those axes (all without words). */
static uint8_t plan_go_home(const gc_block_t *b, plan_t *pl, uint8_t record)
{
    float stored[N_AXIS];
    if (!coords_read(record, stored)) return STATUS_SETTING_READ_FAIL;
    uint8_t axes = b->words & WORD_AXES;
    target_mm(b, &pl->frame, pl->via);
    for (uint8_t a = 0; a < N_AXIS; a++) {
        pl->to[a] = (!axes || (axes & (1u << a))) ? stored[a] : gc.position[a];
    }
    pl->moves = axes ? 2 : 1;
    pl->motion = MOTION_SEEK;
    if (!axes) memcpy(pl->via, pl->to, sizeof(pl->to));
    return STATUS_OK;
}

static uint8_t plan_nonmodal(const gc_block_t *b, plan_t *pl)
{
    switch (b->nonmodal) {
    case GC_SET_COORD: return plan_set_coord(b, pl);
    case GC_SET_OFFSET: plan_set_offset(b, pl); return STATUS_OK;
    case GC_RESET_OFFSET: memset(pl->frame.g92, 0, sizeof(pl->frame.g92)); return STATUS_OK;
    case GC_SET_HOME_0:
    case GC_SET_HOME_1:
        memcpy(pl->store, gc.position, sizeof(pl->store));
        pl->store_index = b->nonmodal == GC_SET_HOME_0 ? COORD_G28 : COORD_G30;
        return STATUS_OK;
    case GC_GO_HOME_0: return plan_go_home(b, pl, COORD_G28);
    case GC_GO_HOME_1: return plan_go_home(b, pl, COORD_G30);
    default: return STATUS_OK;
    }
}

/* Work out the line: new modes, offsets and targets; STATUS_OK when all of it may be applied. */
static uint8_t plan_line(const gc_block_t *b, plan_t *pl)
{
    memset(pl, 0, sizeof(*pl));
    uint8_t s = load_frame(b, pl);
    /* G80 in force: no axis words at all, not even for G10, G28, G92 or G43.1 (GRBL's strict rule) */
    if (s == STATUS_OK && pl->motion == MOTION_NONE && (b->words & WORD_AXES)) s = STATUS_AXIS_WORDS_EXIST;
    if (s == STATUS_OK) s = plan_nonmodal(b, pl);
    if (s != STATUS_OK) return s;
    if (b->tlo == TLO_DYNAMIC) pl->frame.tlo = b->xyz[Z_AXIS];
    if (b->tlo == TLO_CANCEL) pl->frame.tlo = 0.0f;
    uint8_t axis_words_move = (b->words & WORD_AXES) && b->tlo == TLO_UNSET &&
                              (b->nonmodal == GC_NONE || b->nonmodal == GC_MACHINE_COORDS ||
                               b->nonmodal == GC_SET_HOME_0 || b->nonmodal == GC_SET_HOME_1 ||
                               b->nonmodal == GC_RESET_OFFSET);
    if (axis_words_move) {
        target_mm(b, &pl->frame, pl->to);
        memcpy(pl->via, pl->to, sizeof(pl->to));
        pl->moves = 1;
    }
    if (!pl->moves) return STATUS_OK;
    s = to_steps(pl->via, pl->via_steps);
    if (s == STATUS_OK) s = to_steps(pl->to, pl->to_steps);
    if (s != STATUS_OK) return s;
    if (pl->motion == MOTION_LINEAR && pl->feed <= 0.0f) return STATUS_UNDEFINED_FEED_RATE;
    s = check_travel(pl->via);
    return s == STATUS_OK ? check_travel(pl->to) : s;
}

static uint8_t frame_differs(const frame_t *f)
{
    return memcmp(f->coord, gc.coord_system, sizeof(f->coord)) != 0 || memcmp(f->g92, gc.g92, sizeof(f->g92)) != 0 ||
           f->tlo != gc.tlo;
}

static void apply_modes(const gc_block_t *b, const plan_t *pl)
{
    if (b->distance != DIST_UNSET) gc.relative = (b->distance == DIST_RELATIVE);
    if (b->motion != 0xFF) gc.motion = b->motion;
    if (b->words & WORD_F) gc.feed = b->f;
    if (frame_differs(&pl->frame)) gc.wco_changed = 1;
    gc.coord_select = pl->coord_select;
    memcpy(gc.coord_system, pl->frame.coord, sizeof(gc.coord_system));
    memcpy(gc.g92, pl->frame.g92, sizeof(gc.g92));
    gc.tlo = pl->frame.tlo;
    if (pl->store_index != 0xFF && !gc.check) coords_write(pl->store_index, pl->store);
}

static uint8_t run_moves(const plan_t *pl)
{
    uint8_t mode = pl->motion == MOTION_SEEK ? PLAN_RAPID : PLAN_FEED;
    uint8_t s = STATUS_OK;
    if (pl->moves == 2) {
        s = mc_line(pl->via_steps, pl->feed, mode);
        if (s == STATUS_OK) memcpy(gc.position, pl->via, sizeof(gc.position));
    }
    if (s == STATUS_OK) s = mc_line(pl->to_steps, pl->feed, mode);
    if (s == STATUS_OK) memcpy(gc.position, pl->to, sizeof(gc.position));
    return s;
}

/* M2 / M30, after the queued moves: G1, G90 and G54 again (G92, the tool offset and F stay, as GRBL 1.1 keeps
 * them), overrides back to 100 %, [MSG:Pgm End]. */
static uint8_t program_end(void)
{
    uint8_t status = mc_sync();
    if (status != STATUS_OK) return status;
    gc.motion = MOTION_LINEAR;
    gc.relative = 0;
    gc.coord_select = 0;
    gc.wco_changed = 1;
    if (!coords_read(0, gc.coord_system)) return STATUS_SETTING_READ_FAIL;
    mc_program_end();
    return STATUS_OK;
}

uint8_t gc_execute_line(const char *line)
{
    gc_block_t b;
    plan_t pl;
    uint8_t status = gc_parse_line(line, &b, 0);
    if (status == STATUS_OK) status = plan_line(&b, &pl);
    if (status != STATUS_OK) {
        return status;   /* nothing of a refused line takes effect */
    }
    apply_modes(&b, &pl);
    if (b.nonmodal == GC_DWELL) {
        status = mc_dwell(b.p);
    } else if (b.m280) {
        status = mc_servo(b.s);
    } else if (pl.moves) {
        status = run_moves(&pl);
    }
    if (status != STATUS_OK || b.flow == FLOW_NONE || b.flow == 1) {
        return status;   /* M1, the optional stop, is ignored as GRBL ignores it */
    }
    return b.flow == 0 ? mc_pause() : program_end();
}

uint8_t gc_execute_jog(const char *body)
{
    gc_block_t b;
    plan_t pl;
    uint8_t status = gc_parse_line(body, &b, 1);
    if (status == STATUS_OK) status = load_frame(&b, &pl);
    if (status != STATUS_OK) return status;
    if (!(b.words & WORD_AXES)) return STATUS_OK;   /* nothing to move (GRBL answers ok as well) */
    if (pl.feed <= 0.0f) return STATUS_UNDEFINED_FEED_RATE;
    target_mm(&b, &pl.frame, pl.to);
    status = to_steps(pl.to, pl.to_steps);
    if (status == STATUS_OK) status = check_travel(pl.to);
    if (status != STATUS_OK) return status;
    /* the modal state is left as it was; only the position follows the jog (synced again after a cancel) */
    memcpy(gc.position, pl.to, sizeof(gc.position));
    return mc_jog(pl.to_steps, pl.feed);
}
