/* motion.h: what an executed G-code block asks of the machine (queued moves, dwell, servo). */
#ifndef MOTION_H
#define MOTION_H
#include <stdint.h>
#include "config.h"

/* Queue a straight move to target (steps); waits only while the planner is full. STATUS_* or STATUS_ABORTED. */
uint8_t mc_line(const int32_t target[N_AXIS], float feed_mm_min, uint8_t rapid);
/* Wait for queued moves to finish, then for `seconds`. */
uint8_t mc_dwell(float seconds);
/* Wait for queued moves to finish, then set the focus servo to `degrees` (0..180). */
uint8_t mc_servo(float degrees);

#endif
