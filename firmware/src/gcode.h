/* gcode.h: parses one normalised line of G-code (or the body of a $J= jog) into a block, checks all of it, and
 * only then executes it through motion.h: a refused line changes nothing. */
#ifndef GCODE_H
#define GCODE_H
#include <stdint.h>
#include "config.h"
#include "status.h"

enum { MOTION_SEEK = 0, MOTION_LINEAR = 1, MOTION_NONE = 80 };   /* G0, G1, G80 */
enum { DIST_UNSET = 0, DIST_ABSOLUTE, DIST_RELATIVE };  /* G90, G91 */
enum { UNITS_UNSET = 0, UNITS_MM, UNITS_INCH };         /* G21, G20 (G20 only inside a jog) */
enum { TLO_UNSET = 0, TLO_DYNAMIC, TLO_CANCEL };        /* G43.1, G49 */
#define FLOW_NONE 0xFF                                  /* else the M number: 0, 1, 2 or 30 */
/* Modal groups whose only mode is the one the stage is always in: accepted (once per line), as GRBL does for the
 * safe-start lines of CAM programs ("G17 G40 G80 G90 G94", "M5 M9"). */
#define NOOP_PLANE   (1u << 0)   /* G17 */
#define NOOP_FEED    (1u << 1)   /* G94 */
#define NOOP_CUTTER  (1u << 2)   /* G40 */
#define NOOP_PATH    (1u << 3)   /* G61 */
#define NOOP_SPINDLE (1u << 4)   /* M5 */
#define NOOP_COOLANT (1u << 5)   /* M9 */
/* The non-modal group (GRBL's group 0): at most one per line. */
enum {
    GC_NONE = 0, GC_DWELL,          /* G4 */
    GC_SET_COORD,                   /* G10 L2 / L20 */
    GC_GO_HOME_0, GC_SET_HOME_0,    /* G28, G28.1 */
    GC_GO_HOME_1, GC_SET_HOME_1,    /* G30, G30.1 */
    GC_SET_OFFSET, GC_RESET_OFFSET, /* G92, G92.1 */
    GC_MACHINE_COORDS,              /* G53 */
};

#define WORD_X (1u << 0)
#define WORD_Y (1u << 1)
#define WORD_Z (1u << 2)
#define WORD_F (1u << 3)
#define WORD_P (1u << 4)
#define WORD_S (1u << 5)
#define WORD_N (1u << 6)
#define WORD_L (1u << 7)
#define WORD_AXES (WORD_X | WORD_Y | WORD_Z)

#define N_COORD_SYSTEMS 6   /* G54..G59 */

typedef struct {
    uint8_t motion;       /* 0xFF when the line has no G0/G1 */
    uint8_t nonmodal;     /* GC_* */
    uint8_t distance;     /* DIST_* when the line has G90/G91 */
    uint8_t units;        /* UNITS_* when the line has G20/G21 */
    uint8_t coord_select; /* 0..5 for G54..G59, 0xFF when absent */
    uint8_t tlo;          /* TLO_* */
    uint8_t m280;         /* 1 when the line has M280 */
    uint8_t flow;         /* M0, M1, M2, M30: the M number, FLOW_NONE when absent */
    uint8_t noop;         /* NOOP_* groups named */
    uint8_t jog;          /* parsed as the body of $J= */
    uint8_t words;        /* WORD_* present */
    float xyz[N_AXIS];
    float f, p, s, l;
} gc_block_t;

typedef struct {
    uint8_t motion;       /* modal G0/G1/G80 */
    uint8_t relative;     /* G91 active */
    uint8_t coord_select; /* 0..5: G54..G59 */
    uint8_t check;        /* $C check mode: parse and track, never move or store */
    uint8_t wco_changed;  /* set when G54..G59, G92 or TLO change: the next status report carries WCO */
    float feed;           /* mm/min, 0 = undefined */
    float position[N_AXIS];       /* machine mm, the end of the last accepted move */
    float coord_system[N_AXIS];   /* the active G54..G59 offset, machine mm */
    float g92[N_AXIS];            /* G92 offset, mm (not stored: lost at reset, as GRBL) */
    float tlo;                    /* G43.1 tool length offset on Z, mm */
} gc_state_t;

extern gc_state_t gc;

/* Read a decimal number (optional sign, digits, one dot; no exponent) at line[*i]; advance *i.
 * Returns 0 on a malformed or too large (> 9 integer digits) number. */
uint8_t gc_read_float(const char *line, uint8_t *i, float *value);

/* Reset the modal state (G0 G54 G17 G21 G90 G94, no G92, no TLO) and load G54 from storage. */
void gc_init(void);
/* Set the parser position from machine steps (after reset, alarm, jog cancel or homing). */
void gc_sync_position(const int32_t steps[N_AXIS]);
/* The work coordinate offset (G54..G59 + G92 + TLO) that the status report's WCO field carries. */
void gc_wco(float wco[N_AXIS]);
/* Parse and check a line without side effects; STATUS_OK or the error:N code. jog: the body of $J=. */
uint8_t gc_parse_line(const char *line, gc_block_t *block, uint8_t jog);
/* Parse, check and execute; STATUS_OK, an error code, or STATUS_ABORTED if a reset cut it short. */
uint8_t gc_execute_line(const char *line);
/* Execute the body of a `$J=` line (GRBL 1.1's jog rules); same results as gc_execute_line. */
uint8_t gc_execute_jog(const char *body);

#endif
