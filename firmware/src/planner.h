/* planner.h: a small ring of straight moves in steps, each with its own trapezoid (start and end at rest). */
#ifndef PLANNER_H
#define PLANNER_H
#include <stddef.h>
#include <stdint.h>
#include "config.h"

enum { BLOCK_LINE = 0, BLOCK_HOMING = 1 };
/* How a move's rate follows the real-time overrides: feed moves the feed override, rapids the rapid override,
 * jogs and homing moves neither (as GRBL 1.1). */
enum { PLAN_FEED = 0, PLAN_RAPID = 1, PLAN_NO_OVERRIDE = 2 };

typedef struct {
    uint32_t steps[N_AXIS];   /* step count per axis (magnitude) */
    uint32_t step_events;     /* the largest of steps[]: one Bresenham event per step of that axis */
    uint32_t nominal_q16;     /* cruise rate, step events per second, Q16.16, at the present override */
    uint32_t floor_q16;       /* the rate a ramp starts from and ends at, Q16.16 */
    uint32_t accel_q16_tick;  /* rate change per step tick, Q16.16 */
    uint32_t ramp_steps;      /* step events to go from floor to nominal at that acceleration */
    float rate;               /* programmed rate at 100 %, step events per second */
    float rate_max;           /* no axis may go faster: the cap of any override, step events per second */
    float accel;              /* step events per second^2 */
    uint8_t dir_negative;     /* bit per axis: moves toward minus */
    uint8_t kind;             /* BLOCK_LINE, or BLOCK_HOMING (each axis stops when its limit closes) */
    uint8_t mode;             /* PLAN_FEED, PLAN_RAPID or PLAN_NO_OVERRIDE */
} plan_block_t;

void plan_reset(void);
/* Set the planner's position (steps) after a reset, alarm or homing. */
void plan_sync_position(const int32_t steps[N_AXIS]);
void plan_get_position(int32_t steps[N_AXIS]);
uint8_t plan_is_full(void);
uint8_t plan_free_blocks(void);
uint8_t plan_is_empty(void);
/* Queue a move to target (steps). mode PLAN_RAPID runs at each axis's max rate. Returns 0 when nothing was
 * queued (zero length, or longer than 2^31 - 1 steps on an axis). The caller checks plan_is_full() first. */
uint8_t plan_buffer_line(const int32_t target[N_AXIS], float feed_mm_min, uint8_t mode);
/* The feed and rapid overrides (percent) that new blocks are planned with. */
void plan_set_overrides(uint8_t feed_percent, uint8_t rapid_percent);
/* Cruise rate (Q16.16) and ramp length (step events) of a block at the present overrides. */
void plan_block_rates(const plan_block_t *b, uint32_t *nominal_q16, uint32_t *ramp_steps);
/* Call fn on every queued block, oldest first (the main loop's view; the oldest may finish meanwhile). */
void plan_for_each(void (*fn)(plan_block_t *b));
/* Queue a homing move: axes in `axes` travel `distance_mm` (per axis) toward dir_negative at rate_mm_min;
 * the stepper stops each axis at its limit switch. The planner position is not changed. */
uint8_t plan_buffer_homing(uint8_t axes, uint8_t dir_negative, float distance_mm, float rate_mm_min);
/* The oldest queued block, or NULL. Used by the step interrupt. */
plan_block_t *plan_current(void);
void plan_discard_current(void);

#endif
