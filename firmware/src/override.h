/* override.h: GRBL 1.1's real-time overrides: feed (0x90..0x94), rapid (0x95..0x97) and spindle (0x99..0x9D)
 * percentages. The spindle one is kept and reported only: the stage has no spindle. */
#ifndef OVERRIDE_H
#define OVERRIDE_H
#include <stdint.h>

#define OVR_FIRST_BYTE 0x90
#define OVR_LAST_BYTE  0x9D
#define OVR_DEFAULT    100

typedef struct {
    uint8_t feed, rapid, spindle;   /* percent */
} overrides_t;

void ovr_reset(overrides_t *o);
/* Apply pending requests (bit i = byte 0x90 + i), in GRBL's order; returns 1 when any value changed. */
uint8_t ovr_apply(overrides_t *o, uint16_t requests);

#endif
