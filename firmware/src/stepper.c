/* stepper.c: Timer2 interrupt at STEP_TICK_HZ driving st_core: direction and step pins, position, hold. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include "cpu_map.h"
#include "limits.h"
#include "planner.h"
#include "settings.h"
#include "st_core.h"
#include "stepper.h"
#include "system.h"

static st_core_t core;
static uint8_t step_invert_pins;
static uint8_t out_axes, out_negative;   /* step events computed for the next tick and their directions */
static volatile uint8_t hold_requested, held, missed;

static void stop_interrupt(void)
{
    TIMSK2 &= (uint8_t)~(1 << OCIE2A);
}

static void start_block(const plan_block_t *b)
{
    core_load(&core, b);
    step_invert_pins = STEP_PINS(settings.step_invert);
    DIR_PORT = (uint8_t)((DIR_PORT & ~DIR_MASK) | DIR_PINS(b->dir_negative ^ settings.dir_invert));
}

/* Raise the step pins computed in the previous tick (so the pulse starts at a fixed point of the tick) and
 * count them into the position. */
static void pulse_start(uint8_t axes)
{
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | ((STEP_PINS(axes) ^ step_invert_pins) & STEP_MASK));
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (axes & (1u << a)) sys_position[a] += (out_negative & (1u << a)) ? -1 : 1;
    }
}

/* End the pulse once it has lasted $0 us (Timer2 counts 0.5 us); the tick's own work usually takes longer. */
static void pulse_end(uint8_t started_at)
{
    uint8_t counts = (uint8_t)(settings.pulse_us * (F_CPU / STEP_TIMER_PRESCALE / 1000000UL));
    while ((uint8_t)(TCNT2 - started_at) < counts) {
    }
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | (step_invert_pins & STEP_MASK));
}

/* The tick's work: fetch a block when needed, advance the core, remember the step events for the next tick. */
static void step_tick(void)
{
    if (core.block == NULL) {
        const plan_block_t *b = plan_current();
        if (b == NULL || hold_requested) {
            held = hold_requested;
            stop_interrupt();
            return;
        }
        start_block(b);
    }
    core.hold = hold_requested;
    uint8_t done;
    uint8_t limits = core.block->kind == BLOCK_HOMING ? limits_pressed() : 0;
    out_axes = core_tick(&core, limits, &done);
    out_negative = core.block->dir_negative;
    if (core.held) {
        held = 1;
        stop_interrupt();
        return;
    }
    if (done) {
        if (core.block->kind == BLOCK_HOMING) missed |= core.active;
        core.block = NULL;
        plan_discard_current();
    }
}

ISR(TIMER2_COMPA_vect)
{
    uint8_t started_at = TCNT2;
    uint8_t axes = out_axes;
    out_axes = 0;
    if (axes) pulse_start(axes);
    step_tick();
    if (axes) pulse_end(started_at);
}

void st_init(void)
{
    STEP_DDR |= STEP_MASK;
    DIR_DDR |= DIR_MASK;
    ENABLE_DDR |= (1 << ENABLE_BIT);
    st_enable_drivers(0);
    /* CTC at STEP_TICK_HZ; OCR2A is loaded before the interrupt is ever enabled (simavr never matches 0) */
    OCR2A = (uint8_t)STEP_TIMER_TOP;
    TCCR2A = (1 << WGM21);
    TCCR2B = (1 << CS21);
    st_reset();
}

void st_enable_drivers(uint8_t on)
{
    uint8_t level = on ? 0 : 1;   /* active low, unless $4 inverts it */
    if (settings.flags & FLAG_ENABLE_INVERT) level ^= 1;
    if (level) ENABLE_PORT |= (1 << ENABLE_BIT);
    else ENABLE_PORT &= (uint8_t)~(1 << ENABLE_BIT);
}

void st_wake_up(void)
{
    if (held) return;
    st_enable_drivers(1);
    TIMSK2 |= (1 << OCIE2A);
}

void st_kill(void)
{
    stop_interrupt();
    out_axes = 0;   /* a step computed but not yet output is dropped with the rest of the motion */
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | (step_invert_pins & STEP_MASK));
}

void st_reset(void)
{
    uint8_t sreg = SREG;
    cli();
    stop_interrupt();
    core.block = NULL;
    out_axes = 0;
    hold_requested = held = 0;
    missed = 0;
    SREG = sreg;
}

uint8_t st_busy(void)
{
    /* a step computed in the last tick of a block is output one tick later: still busy until then.
     * The barrier makes the compiler re-read what the interrupt changes on every call (LTO inlines this). */
    __asm__ __volatile__("" ::: "memory");
    return core.block != NULL || plan_current() != NULL || out_axes != 0;
}

void st_hold(void)
{
    hold_requested = 1;
}

uint8_t st_hold_complete(void)
{
    /* also complete when nothing was moving: a hold that arrived between the last step and Idle */
    return held || !(TIMSK2 & (1 << OCIE2A));
}

void st_resume(void)
{
    uint8_t sreg = SREG;
    cli();
    core_resume(&core);
    hold_requested = held = 0;
    SREG = sreg;
    st_wake_up();
}

uint8_t st_homing_missed(void)
{
    return missed;
}

void st_clear_homing_missed(void)
{
    missed = 0;
}

static void retarget_block(plan_block_t *b)
{
    uint32_t nominal, ramp;
    plan_block_rates(b, &nominal, &ramp);   /* the float work outside the critical section */
    uint8_t sreg = SREG;
    cli();
    b->nominal_q16 = nominal;
    b->ramp_steps = ramp;
    if (core.block == b) core_retarget(&core);
    SREG = sreg;
}

void st_update_overrides(void)
{
    plan_for_each(retarget_block);
}
