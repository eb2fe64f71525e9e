/* stepper.c: Timer2 interrupt at STEP_TICK_HZ; a DDA paces step events, ramps change the rate every tick. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/delay.h>
#include "cpu_map.h"
#include "limits.h"
#include "planner.h"
#include "settings.h"
#include "stepper.h"
#include "system.h"

#define TICK_Q16 ((uint32_t)STEP_TICK_HZ << 16)

typedef struct {
    plan_block_t *block;
    uint32_t counter[N_AXIS];
    uint32_t completed;
    uint32_t rate;          /* step events per second, Q16.16 */
    uint32_t phase;         /* DDA accumulator */
    uint32_t accel_until;   /* step events: accelerate before this */
    uint32_t decel_after;   /* step events: decelerate from this on */
    uint8_t active;         /* homing: axes still seeking their switch */
    uint8_t step_invert;    /* pin bits */
} stepper_t;

static stepper_t st;
static volatile uint8_t hold_requested, held, missed;

static void set_ramp_window(uint32_t from)
{
    uint32_t rest = st.block->step_events - from;
    uint32_t up = st.block->ramp_steps < rest / 2 ? st.block->ramp_steps : rest / 2;
    uint32_t down = st.block->ramp_steps < rest - rest / 2 ? st.block->ramp_steps : rest - rest / 2;
    st.accel_until = from + up;
    st.decel_after = st.block->step_events - down;
    st.rate = st.block->floor_q16;
    st.phase = TICK_Q16 / 2;
}

static uint8_t axis_pin_bits(uint8_t axis_mask, uint8_t first_bit)
{
    uint8_t bits = 0;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (axis_mask & (1u << a)) bits |= (uint8_t)(1u << (first_bit + a));
    }
    return bits;
}

static void load_block(plan_block_t *b)
{
    st.block = b;
    st.completed = 0;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        st.counter[a] = b->step_events / 2;
    }
    st.active = b->kind == BLOCK_HOMING ? (uint8_t)((b->steps[0] ? 1 : 0) | (b->steps[1] ? 2 : 0) |
                                                    (b->steps[2] ? 4 : 0)) : 0;
    st.step_invert = axis_pin_bits(settings.step_invert, STEP_BIT(0));
    uint8_t dir = axis_pin_bits(b->dir_negative ^ settings.dir_invert, DIR_BIT(0));
    DIR_PORT = (uint8_t)((DIR_PORT & ~DIR_MASK) | dir);
    set_ramp_window(0);
}

static void update_rate(void)
{
    const plan_block_t *b = st.block;
    if (hold_requested) {
        if (st.rate > b->floor_q16 + b->accel_q16_tick) {
            st.rate -= b->accel_q16_tick;
        } else {
            held = 1;
            TIMSK2 &= (uint8_t)~(1 << OCIE2A);
        }
    } else if (st.completed < st.accel_until) {
        st.rate += b->accel_q16_tick;
        if (st.rate > b->nominal_q16) st.rate = b->nominal_q16;
    } else if (st.completed >= st.decel_after) {
        st.rate = st.rate > b->floor_q16 + b->accel_q16_tick ? st.rate - b->accel_q16_tick : b->floor_q16;
    } else {
        st.rate = b->nominal_q16;
    }
}

static void pulse_delay(void)
{
    /* the bookkeeping after raising the pins takes about 2 us; wait out the rest of $0 */
    for (uint8_t us = settings.pulse_us; us > 2; us--) {
        _delay_us(1);
    }
}

static uint8_t step_event(void)
{
    plan_block_t *b = st.block;
    uint8_t bits = 0;
    if (b->kind == BLOCK_HOMING) {
        st.active &= (uint8_t)~limits_pressed();
        if (st.active == 0) return 1;
    }
    for (uint8_t a = 0; a < N_AXIS; a++) {
        st.counter[a] += b->steps[a];
        if (st.counter[a] >= b->step_events) {
            st.counter[a] -= b->step_events;
            if (b->kind == BLOCK_HOMING && !(st.active & (1u << a))) continue;
            bits |= (uint8_t)(1u << (STEP_BIT(0) + a));
            sys_position[a] += (b->dir_negative & (1u << a)) ? -1 : 1;
        }
    }
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | ((bits ^ st.step_invert) & STEP_MASK));
    pulse_delay();
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | (st.step_invert & STEP_MASK));
    return ++st.completed >= b->step_events;
}

ISR(TIMER2_COMPA_vect)
{
    if (st.block == NULL) {
        plan_block_t *b = plan_current();
        if (b == NULL || hold_requested) {
            held = hold_requested;
            TIMSK2 &= (uint8_t)~(1 << OCIE2A);
            return;
        }
        load_block(b);
    }
    update_rate();
    if (held) return;
    st.phase += st.rate;
    if (st.phase < TICK_Q16) return;
    st.phase -= TICK_Q16;
    if (step_event()) {
        if (st.block->kind == BLOCK_HOMING) missed |= st.active;
        st.block = NULL;
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
    TIMSK2 &= (uint8_t)~(1 << OCIE2A);
    STEP_PORT = (uint8_t)((STEP_PORT & ~STEP_MASK) | (st.step_invert & STEP_MASK));
}

void st_reset(void)
{
    uint8_t sreg = SREG;
    cli();
    TIMSK2 &= (uint8_t)~(1 << OCIE2A);
    st.block = NULL;
    hold_requested = held = 0;
    missed = 0;
    SREG = sreg;
}

uint8_t st_busy(void)
{
    return st.block != NULL || plan_current() != NULL;
}

void st_hold(void)
{
    hold_requested = 1;
}

uint8_t st_hold_complete(void)
{
    return held;
}

void st_resume(void)
{
    uint8_t sreg = SREG;
    cli();
    if (st.block != NULL) {
        set_ramp_window(st.completed);
    }
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
