/* gcode.h: parses one normalised line of G-code into a block, checks it, and executes it through motion.h. */
#ifndef GCODE_H
#define GCODE_H
#include <stdint.h>
#include "config.h"
#include "status.h"

enum { MOTION_SEEK = 0, MOTION_LINEAR = 1 };            /* G0, G1 */
enum { GC_NONE = 0, GC_DWELL = 4 };                     /* G4 */
enum { DIST_UNSET = 0, DIST_ABSOLUTE, DIST_RELATIVE };  /* G90, G91 */

#define WORD_X (1u << 0)
#define WORD_Y (1u << 1)
#define WORD_Z (1u << 2)
#define WORD_F (1u << 3)
#define WORD_P (1u << 4)
#define WORD_S (1u << 5)
#define WORD_N (1u << 6)
#define WORD_AXES (WORD_X | WORD_Y | WORD_Z)

typedef struct {
    uint8_t motion;       /* 0xFF when the line has no G0/G1 */
    uint8_t nonmodal;     /* GC_NONE or GC_DWELL */
    uint8_t distance;     /* DIST_* when the line has G90/G91 */
    uint8_t m280;         /* 1 when the line has M280 */
    uint8_t words;        /* WORD_* present */
    float xyz[N_AXIS];
    float f, p, s;
} gc_block_t;

typedef struct {
    uint8_t motion;       /* modal G0/G1 */
    uint8_t relative;     /* G91 active */
    float feed;           /* mm/min, 0 = undefined */
    float position[N_AXIS];   /* mm, the end of the last accepted move */
} gc_state_t;

extern gc_state_t gc;

/* Read a decimal number (optional sign, digits, one dot; no exponent) at line[*i]; advance *i.
 * Returns 0 on a malformed or too large (> 9 integer digits) number. */
uint8_t gc_read_float(const char *line, uint8_t *i, float *value);

void gc_init(void);
/* Set the parser position from machine steps (after reset, alarm or homing). */
void gc_sync_position(const int32_t steps[N_AXIS]);
/* Parse and check a line without side effects; STATUS_OK or the error:N code. */
uint8_t gc_parse_line(const char *line, gc_block_t *block);
/* Parse, check and execute; STATUS_OK, an error code, or STATUS_ABORTED if a reset cut it short. */
uint8_t gc_execute_line(const char *line);


#endif
