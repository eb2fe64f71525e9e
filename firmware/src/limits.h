/* limits.h: the limit switches (hard-limit alarm from a pin-change interrupt) and the homing cycle. */
#ifndef LIMITS_H
#define LIMITS_H
#include <stdint.h>

void limits_init(void);
/* Axes whose switch is closed now (bit per axis), after $5 inversion. */
uint8_t limits_pressed(void);
/* Run the homing cycle ($H): seek, pull off, locate slowly, pull off; STATUS_OK, or an error after an alarm,
 * or STATUS_ABORTED after a reset. */
uint8_t limits_go_home(void);

#endif
