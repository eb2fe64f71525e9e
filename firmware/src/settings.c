/* settings.c: defaults, validation and EEPROM persistence of the $N settings (a versioned, checksummed block). */
#include <string.h>
#include "compat.h"
#include "coords.h"
#include "gcode.h"
#include "nvm.h"
#include "settings.h"
#include "startup.h"
#include "status.h"

settings_t settings;

/* Listing order of `$$`; GRBL 1.1 numbers where the meaning is the same, $200.. for our own. */
static const uint16_t setting_numbers[] PROGMEM = {
    0, 1, 2, 3, 4, 5, 10, 20, 21, 22, 23, 24, 25, 26, 27,
    100, 101, 102, 110, 111, 112, 120, 121, 122, 130, 131, 132,
    200, 201, 202, 204, 0xFFFF,
};

uint16_t settings_number_at(uint8_t index)
{
    if (index >= sizeof(setting_numbers) / sizeof(setting_numbers[0])) {
        return 0xFFFF;
    }
    const uint8_t *p = (const uint8_t *)&setting_numbers[index];
    return (uint16_t)(pgm_read_byte(p) | (pgm_read_byte(p + 1) << 8));
}

void settings_restore_defaults(void)
{
    memset(&settings, 0, sizeof(settings));
    for (uint8_t a = 0; a < N_AXIS; a++) {
        settings.steps_per_mm[a] = 400.0f;   /* 2.5 um per step */
        settings.max_rate[a] = 600.0f;       /* 4 kHz at 400 steps/mm */
        settings.acceleration[a] = 50.0f;
    }
    settings.max_travel[X_AXIS] = 70.0f;
    settings.max_travel[Y_AXIS] = 40.0f;
    settings.max_travel[Z_AXIS] = 10.0f;
    settings.homing_feed = 50.0f;
    settings.homing_seek = 300.0f;
    settings.homing_pulloff = 1.0f;
    settings.homing_debounce_ms = 25;
    settings.servo_min_us = 1000;
    settings.servo_max_us = 2000;
    settings.pulse_us = 10;
    settings.idle_delay_ms = 25;
    settings.flags = FLAG_SOFT_LIMITS | FLAG_HARD_LIMITS | FLAG_HOMING;
    settings.report_mask = REPORT_MPOS | REPORT_BUFFER;
    settings.homing_axes = (1 << X_AXIS) | (1 << Y_AXIS);
    settings.button_debounce_ms = 20;
}

uint8_t settings_checksum(const uint8_t *data, uint16_t len)
{
    /* Rotate-and-add: cheap on the AVR and catches the blank (all 0xFF) EEPROM and single-byte damage. */
    uint8_t sum = 0;
    while (len--) {
        sum = (uint8_t)(((sum << 1) | (sum >> 7)) + *data++);
    }
    return sum;
}

void settings_write(void)
{
    uint8_t version = SETTINGS_VERSION;
    uint8_t sum = settings_checksum((const uint8_t *)&settings, sizeof(settings));
    nvm_write(SETTINGS_ADDR, &version, 1);
    nvm_write(SETTINGS_ADDR + 1, &settings, sizeof(settings));
    nvm_write(SETTINGS_ADDR + 1 + sizeof(settings), &sum, 1);
}

uint8_t settings_init(void)
{
    uint8_t version = 0, sum = 0;
    nvm_read(SETTINGS_ADDR, &version, 1);
    nvm_read(SETTINGS_ADDR + 1, &settings, sizeof(settings));
    nvm_read(SETTINGS_ADDR + 1 + sizeof(settings), &sum, 1);
    if (version == SETTINGS_VERSION &&
        sum == settings_checksum((const uint8_t *)&settings, sizeof(settings))) {
        return 1;
    }
    settings_restore_defaults();
    settings_write();
    coords_clear_all();   /* a blank or foreign EEPROM: start all stored data afresh, as GRBL */
    startup_clear_all();
    return 0;
}

static uint8_t is_integer(float v)
{
    return v == (float)(long)v;
}

static uint8_t rate_fits(float steps_per_mm, float max_rate)
{
    return steps_per_mm * max_rate / 60.0f <= (float)MAX_STEP_RATE;
}

/* Homing sets the position to max travel in steps: keep it well inside int32 (the parser's bound, 1e9). */
static uint8_t travel_fits(float steps_per_mm, float max_travel)
{
    return steps_per_mm * max_travel <= 1.0e9f;
}

static uint8_t set_flag(uint8_t flag, float value)
{
    if (!is_integer(value) || value > 1.0f) {
        return STATUS_INVALID_STATEMENT;
    }
    if (flag == FLAG_SOFT_LIMITS && value != 0.0f && !(settings.flags & FLAG_HOMING)) {
        return STATUS_SOFT_LIMIT_ERROR;   /* soft limits need a homed machine, as in GRBL */
    }
    settings.flags = value != 0.0f ? (settings.flags | flag) : (settings.flags & (uint8_t)~flag);
    return STATUS_OK;
}

static uint8_t set_mask(uint8_t *field, float value)
{
    if (!is_integer(value) || value > 7.0f) {
        return STATUS_INVALID_STATEMENT;
    }
    *field = (uint8_t)value;
    return STATUS_OK;
}

static uint8_t set_axis_value(uint16_t number, float value)
{
    uint8_t axis = (uint8_t)(number % 10);
    if (axis >= N_AXIS || value <= 0.0f || value > 100000.0f) {
        return STATUS_INVALID_STATEMENT;
    }
    switch (number / 10) {
    case 10:
        if (!rate_fits(value, settings.max_rate[axis])) return STATUS_MAX_STEP_RATE_EXCEEDED;
        if (!travel_fits(value, settings.max_travel[axis])) return STATUS_INVALID_STATEMENT;
        settings.steps_per_mm[axis] = value;
        return STATUS_OK;
    case 11:
        if (!rate_fits(settings.steps_per_mm[axis], value)) return STATUS_MAX_STEP_RATE_EXCEEDED;
        settings.max_rate[axis] = value;
        return STATUS_OK;
    case 12:
        settings.acceleration[axis] = value;
        return STATUS_OK;
    case 13:
        if (!travel_fits(settings.steps_per_mm[axis], value)) return STATUS_INVALID_STATEMENT;
        settings.max_travel[axis] = value;
        return STATUS_OK;
    default:
        return STATUS_INVALID_STATEMENT;
    }
}

static uint8_t set_servo_us(uint16_t *field, float value, uint16_t lo, uint16_t hi)
{
    if (!is_integer(value) || value < 400.0f || value > 2600.0f) {
        return STATUS_INVALID_STATEMENT;
    }
    if (value < (float)lo || value > (float)hi) {
        return STATUS_INVALID_STATEMENT;   /* min must stay below max */
    }
    *field = (uint16_t)value;
    return STATUS_OK;
}

static uint8_t set_small_value(uint16_t number, float value)
{
    switch (number) {
    case 0:
        if (!is_integer(value)) return STATUS_INVALID_STATEMENT;
        if (value < 3.0f) return STATUS_SETTING_STEP_PULSE_MIN;
        if (value > 20.0f) return STATUS_INVALID_STATEMENT;
        settings.pulse_us = (uint8_t)value;
        return STATUS_OK;
    case 1:
        if (!is_integer(value) || value > 255.0f) return STATUS_INVALID_STATEMENT;
        settings.idle_delay_ms = (uint8_t)value;
        return STATUS_OK;
    case 2: return set_mask(&settings.step_invert, value);
    case 3: return set_mask(&settings.dir_invert, value);
    case 4: return set_flag(FLAG_ENABLE_INVERT, value);
    case 5: return set_flag(FLAG_LIMIT_INVERT, value);
    case 10:
        if (!is_integer(value) || value > 3.0f) return STATUS_INVALID_STATEMENT;
        settings.report_mask = (uint8_t)value | REPORT_MPOS;
        return STATUS_OK;
    case 20: return set_flag(FLAG_SOFT_LIMITS, value);
    case 21: return set_flag(FLAG_HARD_LIMITS, value);
    case 22: return set_flag(FLAG_HOMING, value);
    case 23: return set_mask(&settings.homing_dir, value);
    default: return STATUS_INVALID_STATEMENT;
    }
}

static uint8_t set_homing_value(uint16_t number, float value)
{
    switch (number) {
    case 24:
    case 25:
        if (value <= 0.0f || value > 100000.0f) return STATUS_INVALID_STATEMENT;
        *(number == 24 ? &settings.homing_feed : &settings.homing_seek) = value;
        return STATUS_OK;
    case 26:
        if (!is_integer(value) || value > 1000.0f) return STATUS_INVALID_STATEMENT;
        settings.homing_debounce_ms = (uint16_t)value;
        return STATUS_OK;
    case 27:
        if (value > 100.0f) return STATUS_INVALID_STATEMENT;
        settings.homing_pulloff = value;
        return STATUS_OK;
    default:
        return STATUS_INVALID_STATEMENT;
    }
}

static uint8_t set_own_value(uint16_t number, float value)
{
    switch (number) {
    case 200: return set_mask(&settings.homing_axes, value);
    case 201: return set_servo_us(&settings.servo_min_us, value, 400, settings.servo_max_us - 1);
    case 202: return set_servo_us(&settings.servo_max_us, value, settings.servo_min_us + 1, 2600);
    case 204:
        if (!is_integer(value) || value < 1.0f || value > 250.0f) return STATUS_INVALID_STATEMENT;
        settings.button_debounce_ms = (uint8_t)value;
        return STATUS_OK;
    default:
        return STATUS_INVALID_STATEMENT;
    }
}

uint8_t settings_store_value(uint16_t number, float value)
{
    if (value < 0.0f) {
        return STATUS_NEGATIVE_VALUE;
    }
    if (!(value <= 1.0e9f)) {
        return STATUS_INVALID_STATEMENT;   /* also refuses NaN */
    }
    uint8_t status;
    if (number >= 100 && number < 140) {
        status = set_axis_value(number, value);
    } else if (number >= 24 && number <= 27) {
        status = set_homing_value(number, value);
    } else if (number >= 200) {
        status = set_own_value(number, value);
    } else {
        status = set_small_value(number, value);
    }
    if (status == STATUS_OK) {
        settings_write();
    }
    return status;
}

static float axis_value(uint16_t number)
{
    uint8_t axis = (uint8_t)(number % 10);
    switch (number / 10) {
    case 10: return settings.steps_per_mm[axis];
    case 11: return settings.max_rate[axis];
    case 12: return settings.acceleration[axis];
    default: return settings.max_travel[axis];
    }
}

static float small_value(uint16_t number)
{
    switch (number) {
    case 0: return settings.pulse_us;
    case 1: return settings.idle_delay_ms;
    case 2: return settings.step_invert;
    case 3: return settings.dir_invert;
    case 4: return (settings.flags & FLAG_ENABLE_INVERT) ? 1 : 0;
    case 5: return (settings.flags & FLAG_LIMIT_INVERT) ? 1 : 0;
    case 10: return settings.report_mask;
    case 20: return (settings.flags & FLAG_SOFT_LIMITS) ? 1 : 0;
    case 21: return (settings.flags & FLAG_HARD_LIMITS) ? 1 : 0;
    case 22: return (settings.flags & FLAG_HOMING) ? 1 : 0;
    case 23: return settings.homing_dir;
    case 24: return settings.homing_feed;
    case 25: return settings.homing_seek;
    case 26: return settings.homing_debounce_ms;
    case 27: return settings.homing_pulloff;
    case 200: return settings.homing_axes;
    case 201: return settings.servo_min_us;
    case 202: return settings.servo_max_us;
    default: return settings.button_debounce_ms;   /* 204 */
    }
}

uint8_t settings_get_value(uint16_t number, float *value)
{
    for (uint8_t i = 0;; i++) {
        uint16_t n = settings_number_at(i);
        if (n == 0xFFFF) {
            return 0;
        }
        if (n == number) {
            break;
        }
    }
    *value = (number >= 100 && number < 140) ? axis_value(number) : small_value(number);
    return 1;
}

uint8_t settings_parse_assignment(const char *line, uint16_t *number, float *value)
{
    uint8_t i = 1;
    float n;
    if (line[0] != '$' || !gc_read_float(line, &i, &n) || line[i] != '=') {
        return STATUS_INVALID_STATEMENT;
    }
    if (n < 0.0f || n > 999.0f || n != (float)(uint16_t)n || line[1] == '-' || line[1] == '+') {
        return STATUS_INVALID_STATEMENT;
    }
    i++;
    if (!gc_read_float(line, &i, value) || line[i] != '\0') {
        return STATUS_BAD_NUMBER_FORMAT;
    }
    *number = (uint16_t)n;
    return STATUS_OK;
}
