/* motion.h: what an executed G-code block asks of the machine (queued moves, jogs, dwell, servo, program flow). */
#ifndef MOTION_H
#define MOTION_H
#include <stdint.h>
#include "config.h"
#include "planner.h"

/* Queue a straight move to target (steps); mode PLAN_FEED or PLAN_RAPID. Waits only while the planner is full.
 * In check mode nothing is queued. STATUS_* or STATUS_ABORTED. */
uint8_t mc_line(const int32_t target[N_AXIS], float feed_mm_min, uint8_t mode);
/* Queue a jog move (no override, Jog state). The parser has set its position to the target already; a jog
 * cancelled while this one waited for room is dropped and the parser position synced to the machine. */
uint8_t mc_jog(const int32_t target[N_AXIS], float feed_mm_min);
/* Wait for queued moves to finish, then for `seconds`. */
uint8_t mc_dwell(float seconds);
/* Wait for queued moves to finish, then set the focus servo to `degrees` (0..180). */
uint8_t mc_servo(float degrees);

/* M0: wait for queued moves to finish, then hold (Hold:0) until the cycle start '~'. */
uint8_t mc_pause(void);
/* Wait for queued moves to finish (nothing to wait for in check mode). */
uint8_t mc_sync(void);
/* M2 / M30, machine side, once the parser has reset its modes: overrides back to 100 %, [MSG:Pgm End]. */
void mc_program_end(void);

#endif
