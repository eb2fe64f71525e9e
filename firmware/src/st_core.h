/* st_core.h: the arithmetic of the step interrupt (DDA pacing, Bresenham, trapezoid, hold), free of I/O so the
 * host tests run it tick by tick. stepper.c wraps it with the timer, the pins and the planner queue. */
#ifndef ST_CORE_H
#define ST_CORE_H
#include <stdint.h>
#include "planner.h"

#define TICK_Q16 ((uint32_t)STEP_TICK_HZ << 16)

typedef struct {
    const plan_block_t *block;
    uint32_t counter[N_AXIS];
    uint32_t completed;     /* step events done in this block */
    uint32_t rate;          /* step events per second, Q16.16 */
    uint32_t phase;         /* DDA accumulator: a step event each time it passes TICK_Q16 */
    uint32_t decel_after;   /* decelerate to a stop once completed >= decel_after; before, approach nominal */
    uint8_t active;         /* homing: axes whose switch is still open */
    uint8_t hold;           /* feed hold requested: decelerate to the floor rate, then stop */
    uint8_t held;           /* the hold has come to rest */
} st_core_t;

void core_load(st_core_t *c, const plan_block_t *b);
/* After a hold: ramp up again from rest over what is left of the block. */
void core_resume(st_core_t *c);
/* The block's cruise rate changed (an override): move the deceleration point so the block still ends at rest,
 * from the present rate, and approach the new rate at the block's acceleration meanwhile. */
void core_retarget(st_core_t *c);
/* Advance one tick. limits: axes whose switch is closed (used by homing blocks). Returns the axes to step
 * now (bit per axis); *done is set when the block has ended (all steps, or all homing switches closed). */
uint8_t core_tick(st_core_t *c, uint8_t limits, uint8_t *done);

#endif
