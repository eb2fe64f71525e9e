/* stepper.h: the fixed-rate step interrupt (Timer2): Bresenham step events, trapezoid ramps, feed hold. */
#ifndef STEPPER_H
#define STEPPER_H
#include <stdint.h>

void st_init(void);
/* Start (or keep) executing queued blocks unless a hold has stopped the motion. */
void st_wake_up(void);
/* Stop at once, from any context: no further pulses until st_reset() and st_wake_up(). */
void st_kill(void);
/* Forget the block in progress and any hold (after st_kill and plan_reset). */
void st_reset(void);
/* A block is being executed (or is loaded and held). */
uint8_t st_busy(void);
void st_hold(void);
uint8_t st_hold_complete(void);
/* Continue after a completed hold: re-plan the ramp of the rest of the current block from rest. */
void st_resume(void);
/* After a homing block: the axes that ran out of travel without closing their switch. */
uint8_t st_homing_missed(void);
void st_clear_homing_missed(void);
void st_enable_drivers(uint8_t on);
/* The overrides changed (plan_set_overrides): give every queued block its new cruise rate and ramp, and the
 * block in progress a new deceleration point, each update atomic with respect to the step interrupt. */
void st_update_overrides(void);

#endif
