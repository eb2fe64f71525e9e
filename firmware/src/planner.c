/* planner.c: turns targets in steps into step-event counts, a cruise rate and a trapezoid ramp per block. */
#include <math.h>
#include <string.h>
#include "compat.h"
#include "planner.h"
#include "settings.h"

static plan_block_t blocks[PLANNER_BLOCKS];
static volatile uint8_t head;   /* next free slot: written by the main loop only */
static volatile uint8_t tail;   /* oldest block: written by the step interrupt only */
static int32_t position[N_AXIS];
static uint8_t override_feed = 100, override_rapid = 100;   /* percent */

#define NEXT(i) ((uint8_t)(((i) + 1) & (PLANNER_BLOCKS - 1)))
#define Q16 65536.0f

void plan_reset(void)
{
    head = tail = 0;
}

void plan_sync_position(const int32_t steps[N_AXIS])
{
    memcpy(position, steps, sizeof(position));
}

void plan_get_position(int32_t steps[N_AXIS])
{
    memcpy(steps, position, sizeof(position));
}

uint8_t plan_is_full(void)
{
    return NEXT(head) == tail;
}

uint8_t plan_is_empty(void)
{
    return head == tail;
}

uint8_t plan_free_blocks(void)
{
    return (uint8_t)((tail - head - 1) & (PLANNER_BLOCKS - 1));
}

plan_block_t *plan_current(void)
{
    return head == tail ? NULL : &blocks[tail];
}

void plan_discard_current(void)
{
    if (head != tail) {
        tail = NEXT(tail);
    }
}

void plan_set_overrides(uint8_t feed_percent, uint8_t rapid_percent)
{
    override_feed = feed_percent;
    override_rapid = rapid_percent;
}

void plan_for_each(void (*fn)(plan_block_t *b))
{
    for (uint8_t i = tail; i != head; i = NEXT(i)) fn(&blocks[i]);
}

void plan_block_rates(const plan_block_t *b, uint32_t *nominal_q16, uint32_t *ramp_steps)
{
    float percent = b->mode == PLAN_FEED ? override_feed : (b->mode == PLAN_RAPID ? override_rapid : 100);
    float rate = b->rate * percent * 0.01f;
    float floor_rate = (float)b->floor_q16 / Q16;
    if (rate > b->rate_max) rate = b->rate_max;
    if (rate < floor_rate) rate = floor_rate;
    *nominal_q16 = (uint32_t)(rate * Q16);
    *ramp_steps = (uint32_t)ceilf((rate * rate - floor_rate * floor_rate) / (2.0f * b->accel));
}

/* Fill the rate fields from the programmed and the highest path rate and the acceleration, all in step events
 * per second (and s^2). */
static void set_ramp(plan_block_t *b, float rate, float rate_max, float accel)
{
    if (rate_max > (float)MAX_STEP_RATE) rate_max = (float)MAX_STEP_RATE;
    if (accel < 1.0f) accel = 1.0f;
    /* start a ramp at the speed reached after half a step from rest, so the first step comes promptly; but
     * never above the slowest rate the block may be asked for (10 % feed override, 25 % rapid), which it
     * could then never run at (a G1 F10 used to run at this floor: twice too fast) */
    float slowest = rate * (b->mode == PLAN_FEED ? 0.10f : (b->mode == PLAN_RAPID ? 0.25f : 1.0f));
    float floor_rate = sqrtf(accel);
    if (floor_rate > slowest) floor_rate = slowest;
    if (floor_rate < (float)MIN_STEP_RATE) floor_rate = (float)MIN_STEP_RATE;
    b->rate = rate;
    b->rate_max = rate_max;
    b->accel = accel;
    b->floor_q16 = (uint32_t)(floor_rate * Q16);
    float per_tick = accel * Q16 / (float)STEP_TICK_HZ;
    b->accel_q16_tick = per_tick < 1.0f ? 1u : (uint32_t)per_tick;
    plan_block_rates(b, &b->nominal_q16, &b->ramp_steps);
}

/* Path length in mm and the fastest rate (mm/min) and acceleration (mm/s^2) no axis exceeds. */
static float path_limits(const float delta_mm[N_AXIS], float *rate, float *accel)
{
    float length = 0.0f;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        length += delta_mm[a] * delta_mm[a];
    }
    length = sqrtf(length);
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (delta_mm[a] != 0.0f) {
            float share = length / fabsf(delta_mm[a]);
            float r = settings.max_rate[a] * share;
            float c = settings.acceleration[a] * share;
            if (r < *rate) *rate = r;
            if (c < *accel) *accel = c;
        }
    }
    return length;
}

uint8_t plan_buffer_line(const int32_t target[N_AXIS], float feed_mm_min, uint8_t mode)
{
    plan_block_t *b = &blocks[head];
    memset(b, 0, sizeof(*b));
    float delta_mm[N_AXIS];
    for (uint8_t a = 0; a < N_AXIS; a++) {
        /* in 64 bits: two int32 positions can lie 2^32 apart; above 2^31 - 1 steps the Bresenham sums of the
         * step interrupt would overflow, so such a move is refused (the parser never asks for one) */
        int64_t d = (int64_t)target[a] - position[a];
        if (d > INT32_MAX || d < -(int64_t)INT32_MAX) return 0;
        b->steps[a] = (uint32_t)(d < 0 ? -d : d);
        if (d < 0) b->dir_negative |= (uint8_t)(1u << a);
        if (b->steps[a] > b->step_events) b->step_events = b->steps[a];
        delta_mm[a] = (float)d / settings.steps_per_mm[a];
    }
    if (b->step_events == 0) {
        return 0;
    }
    float rate_max = 1.0e9f, accel = 1.0e9f;
    float length = path_limits(delta_mm, &rate_max, &accel);
    float events_per_mm = (float)b->step_events / length;
    float rate = mode == PLAN_RAPID ? rate_max : feed_mm_min;
    b->mode = mode;
    set_ramp(b, rate / 60.0f * events_per_mm, rate_max / 60.0f * events_per_mm, accel * events_per_mm);
    b->kind = BLOCK_LINE;
    memcpy(position, target, sizeof(position));
    head = NEXT(head);
    return 1;
}

uint8_t plan_buffer_homing(uint8_t axes, uint8_t dir_negative, float distance_mm, float rate_mm_min)
{
    plan_block_t *b = &blocks[head];
    memset(b, 0, sizeof(*b));
    float delta_mm[N_AXIS] = {0};
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (axes & (1u << a)) {
            delta_mm[a] = distance_mm;
            b->steps[a] = (uint32_t)(distance_mm * settings.steps_per_mm[a]);
            if (b->steps[a] > b->step_events) b->step_events = b->steps[a];
        }
    }
    if (b->step_events == 0) {
        return 0;
    }
    float rate_max = 1.0e9f, accel = 1.0e9f;
    float length = path_limits(delta_mm, &rate_max, &accel);
    float events_per_mm = (float)b->step_events / length;
    b->mode = PLAN_NO_OVERRIDE;
    set_ramp(b, rate_mm_min / 60.0f * events_per_mm, rate_max / 60.0f * events_per_mm, accel * events_per_mm);
    b->dir_negative = dir_negative & axes;
    b->kind = BLOCK_HOMING;
    head = NEXT(head);
    return 1;
}
