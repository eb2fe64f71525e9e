/* stepper.c: Timer2 interrupt at STEP_TICK_HZ driving st_core: direction and step pins, position, hold. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/delay.h>
#include "cpu_map.h"
#include "limits.h"
#include "planner.h"
#include "settings.h"
#include "st_core.h"
#include "stepper.h"
#include "system.h"

static st_core_t core;
static uint8_t step_invert_bits;
static volatile uint8_t hold_requested, held, missed;

static uint8_t axis_pin_bits(uint8_t axis_mask, uint8_t first_bit)
{
    uint8_t bits = 0;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (axis_mask & (1u << a)) bits |= (uint8_t)(1u << (first_bit + a));
    }
    return bits;
}

static void stop_interrupt(void)
{
    TIMSK2 &= (uint8_t)~(1 << OCIE2A);
}

static void start_block(const plan_block_t *b)
{
    core_load(&core, b);
    step_invert_bits = axis_pin_bits(settings.step_invert, STEP_BIT(0));
    uint8_t dir = axis_pin_bits(b->dir_negative ^ settings.dir_invert, DIR_BIT(0));
    DIR_PORT = (uint8_t)((DIR_PORT & ~DIR_MASK) | dir);   /* set a tick or more before the first step */
}

static void pulse(uint8_t axes)
{
    uint8_t bits = axis_pin_bits(axes, STEP_BIT(0));
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | ((bits ^ step_invert_bits) & STEP_MASK));
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (axes & (1u << a)) sys_position[a] += (core.block->dir_negative & (1u << a)) ? -1 : 1;
    }
    /* the bookkeeping above takes about 2 us; wait out the rest of the $0 pulse width */
    for (uint8_t us = settings.pulse_us; us > 2; us--) _delay_us(1);
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | (step_invert_bits & STEP_MASK));
}

ISR(TIMER2_COMPA_vect)
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
    uint8_t axes = core_tick(&core, limits, &done);
    if (core.held) {
        held = 1;
        stop_interrupt();
        return;
    }
    if (axes) pulse(axes);
    if (done) {
        if (core.block->kind == BLOCK_HOMING) missed |= core.active;
        core.block = NULL;
        plan_discard_current();
    }
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
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | (step_invert_bits & STEP_MASK));
}

void st_reset(void)
{
    uint8_t sreg = SREG;
    cli();
    stop_interrupt();
    core.block = NULL;
    hold_requested = held = 0;
    missed = 0;
    SREG = sreg;
}

uint8_t st_busy(void)
{
    return core.block != NULL || plan_current() != NULL;
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
