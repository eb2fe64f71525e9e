/* settings.h: the $N settings, their defaults, validation, and the checksummed EEPROM block that keeps them. */
#ifndef SETTINGS_H
#define SETTINGS_H
#include <stdint.h>
#include "config.h"

#define SETTINGS_VERSION 1   /* bump when settings_t changes shape: old blocks then read as invalid */
#define SETTINGS_ADDR    0   /* EEPROM address of the version byte; the block and checksum follow */

#define FLAG_ENABLE_INVERT 0x01  /* $4 */
#define FLAG_LIMIT_INVERT  0x02  /* $5 */
#define FLAG_SOFT_LIMITS   0x04  /* $20 */
#define FLAG_HARD_LIMITS   0x08  /* $21 */
#define FLAG_HOMING        0x10  /* $22 */

#define REPORT_MPOS   0x01      /* $10 bit 0: MPos field (always on: only machine position is kept) */
#define REPORT_BUFFER 0x02      /* $10 bit 1: Bf field */

typedef struct {
    float steps_per_mm[N_AXIS];   /* $100..$102 */
    float max_rate[N_AXIS];       /* $110..$112, mm/min */
    float acceleration[N_AXIS];   /* $120..$122, mm/s^2 */
    float max_travel[N_AXIS];     /* $130..$132, mm */
    float homing_feed;            /* $24, mm/min */
    float homing_seek;            /* $25, mm/min */
    float homing_pulloff;         /* $27, mm */
    uint16_t homing_debounce_ms;  /* $26 */
    uint16_t servo_min_us;        /* $201: pulse at 0 degrees */
    uint16_t servo_max_us;        /* $202: pulse at 180 degrees */
    uint8_t pulse_us;             /* $0 */
    uint8_t idle_delay_ms;        /* $1, 255 keeps the drivers enabled */
    uint8_t step_invert;          /* $2 */
    uint8_t dir_invert;           /* $3 */
    uint8_t flags;                /* $4 $5 $20 $21 $22 */
    uint8_t report_mask;          /* $10 */
    uint8_t homing_dir;           /* $23: bit set = that axis homes toward + (switch at max travel) */
    uint8_t homing_axes;          /* $200: axes the homing cycle moves */
    uint8_t button_debounce_ms;   /* $204 */
} settings_t;

extern settings_t settings;

/* Load the block from EEPROM; on a bad version or checksum restore defaults, write them, return 0. */
uint8_t settings_init(void);
void settings_restore_defaults(void);
void settings_write(void);
/* Set $number = value after validation; returns STATUS_OK or an error code (settings unchanged on error). */
uint8_t settings_store_value(uint16_t number, float value);
/* Read the value of $number; returns 0 if there is no such setting. */
uint8_t settings_get_value(uint16_t number, float *value);
/* Parse "$N=value" (a normalised line); STATUS_OK with *number and *value, or the error code. */
uint8_t settings_parse_assignment(const char *line, uint16_t *number, float *value);
/* The setting numbers in listing order, terminated by 0xFFFF. */
uint16_t settings_number_at(uint8_t index);
uint8_t settings_checksum(const uint8_t *data, uint16_t len);

#endif
