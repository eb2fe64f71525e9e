/* st_core.c: per-tick rate update (time-based acceleration, step-indexed phase changes) and Bresenham. */
#include <math.h>
#include <string.h>
#include "st_core.h"

static void set_ramp_window(st_core_t *c, uint32_t from)
{
    const plan_block_t *b = c->block;
    uint32_t rest = b->step_events - from;
    uint32_t down = b->ramp_steps < rest - rest / 2 ? b->ramp_steps : rest - rest / 2;
    c->decel_after = b->step_events - down;
    c->rate = b->floor_q16;
    c->phase = TICK_Q16 / 2;
}

void core_load(st_core_t *c, const plan_block_t *b)
{
    memset(c, 0, sizeof(*c));
    c->block = b;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        c->counter[a] = b->step_events / 2;
        if (b->kind == BLOCK_HOMING && b->steps[a]) c->active |= (uint8_t)(1u << a);
    }
    set_ramp_window(c, 0);
}

void core_resume(st_core_t *c)
{
    c->hold = c->held = 0;
    if (c->block) set_ramp_window(c, c->completed);
}

void core_retarget(st_core_t *c)
{
    const plan_block_t *b = c->block;
    if (b == NULL || c->hold) return;   /* a hold ends at rest; the resume plans the ramp anew */
    float rate = (float)c->rate / 65536.0f, floor_rate = (float)b->floor_q16 / 65536.0f;
    /* steps to stop from here; the peak lies where accelerating and stopping share what is left */
    uint32_t to_stop = (uint32_t)ceilf((rate * rate - floor_rate * floor_rate) / (2.0f * b->accel));
    uint32_t rest = b->step_events - c->completed;
    uint32_t peak = (uint32_t)(((uint64_t)rest + to_stop + 1) / 2);
    uint32_t down = b->ramp_steps < peak ? b->ramp_steps : peak;
    if (down > rest) down = rest;
    c->decel_after = b->step_events - down;
}

static void update_rate(st_core_t *c)
{
    const plan_block_t *b = c->block;
    uint32_t slow = c->rate > b->floor_q16 + b->accel_q16_tick ? c->rate - b->accel_q16_tick : b->floor_q16;
    if (c->hold) {
        if (c->rate == b->floor_q16) c->held = 1;
        c->rate = slow;
    } else if (c->completed >= c->decel_after) {
        c->rate = slow;
    } else if (c->rate < b->nominal_q16) {
        c->rate += b->accel_q16_tick;
        if (c->rate > b->nominal_q16) c->rate = b->nominal_q16;
    } else {
        c->rate = slow > b->nominal_q16 ? slow : b->nominal_q16;   /* an override lowered the rate */
    }
}

uint8_t core_tick(st_core_t *c, uint8_t limits, uint8_t *done)
{
    const plan_block_t *b = c->block;
    *done = 0;
    update_rate(c);
    if (c->held) return 0;
    c->phase += c->rate;
    if (c->phase < TICK_Q16) return 0;
    c->phase -= TICK_Q16;
    if (b->kind == BLOCK_HOMING) {
        c->active &= (uint8_t)~limits;
        if (c->active == 0) {
            *done = 1;
            return 0;
        }
    }
    uint8_t axes = 0;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        c->counter[a] += b->steps[a];
        if (c->counter[a] >= b->step_events) {
            c->counter[a] -= b->step_events;
            axes |= (uint8_t)(1u << a);
        }
    }
    if (b->kind == BLOCK_HOMING) axes &= c->active;
    if (++c->completed >= b->step_events) *done = 1;
    return axes;
}
