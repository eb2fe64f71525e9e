/* limits.c: hard limits (any switch closing outside homing stops everything: ALARM:1) and the $H cycle. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include "cpu_map.h"
#include "gcode.h"
#include "limits.h"
#include "planner.h"
#include "protocol.h"
#include "settings.h"
#include "status.h"
#include "stepper.h"
#include "system.h"

void limits_init(void)
{
    LIMIT_DDR &= (uint8_t)~LIMIT_MASK;
    LIMIT_PORT |= LIMIT_MASK;   /* pull-ups: an open switch reads high */
    LIMIT_PCMSK |= LIMIT_MASK;
    PCICR |= (1 << LIMIT_PCIE);
}

uint8_t limits_pressed(void)
{
    uint8_t pins = LIMIT_PIN;
    if (!(settings.flags & FLAG_LIMIT_INVERT)) pins = (uint8_t)~pins;   /* closed switch pulls low */
    return (uint8_t)(((pins >> LIMIT_BIT_X) & 1) | (((pins >> LIMIT_BIT_Y) & 1) << 1) |
                     (((pins >> LIMIT_BIT_Z) & 1) << 2));
}

ISR(LIMIT_vect)
{
    if (!(settings.flags & FLAG_HARD_LIMITS) || sys.state == STATE_HOMING || sys.state == STATE_ALARM) {
        return;
    }
    if (limits_pressed()) {
        st_kill();
        sys_rt_alarm = ALARM_HARD_LIMIT;
    }
}

/* Queue one homing or pull-off move and wait for it; 0 when a reset or alarm cut it short. */
static uint8_t run_and_wait(void)
{
    st_wake_up();
    return protocol_wait_idle() == STATUS_OK;
}

static uint8_t seek(uint8_t axes, uint8_t toward_negative, float distance, float rate)
{
    st_clear_homing_missed();
    plan_buffer_homing(axes, toward_negative, distance, rate);
    if (!run_and_wait()) return STATUS_ABORTED;
    if (st_homing_missed()) return ALARM_HOMING_FAIL_APPROACH;
    return protocol_delay_ms(settings.homing_debounce_ms) ? STATUS_OK : STATUS_ABORTED;
}

static uint8_t pull_off(uint8_t axes, uint8_t toward_negative, float rate)
{
    int32_t here[N_AXIS], target[N_AXIS];
    system_get_position(here);
    plan_sync_position(here);
    for (uint8_t a = 0; a < N_AXIS; a++) {
        int32_t d = (axes & (1u << a)) ? (int32_t)(settings.homing_pulloff * settings.steps_per_mm[a]) : 0;
        target[a] = here[a] + ((toward_negative & (1u << a)) ? d : -d);
    }
    plan_buffer_line(target, rate, PLAN_NO_OVERRIDE);
    return run_and_wait() ? STATUS_OK : STATUS_ABORTED;
}

static uint8_t homing_steps(uint8_t axes, uint8_t toward_negative)
{
    float longest = 0.0f;
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if ((axes & (1u << a)) && settings.max_travel[a] > longest) longest = settings.max_travel[a];
    }
    uint8_t r = seek(axes, toward_negative, longest * HOMING_MAX_EXTRA, settings.homing_seek);
    if (r == STATUS_OK) r = pull_off(axes, toward_negative, settings.homing_seek);
    float locate = settings.homing_pulloff * 2.0f + 0.1f;
    if (r == STATUS_OK) r = seek(axes, toward_negative, locate, settings.homing_feed);
    if (r == STATUS_OK) r = pull_off(axes, toward_negative, settings.homing_feed);
    if (r == STATUS_OK && (limits_pressed() & axes)) r = ALARM_HOMING_FAIL_PULLOFF;
    return r;
}

uint8_t limits_go_home(void)
{
    uint8_t axes = settings.homing_axes & 7;
    uint8_t toward_negative = (uint8_t)(~settings.homing_dir & axes);
    sys.state = STATE_HOMING;
    uint8_t r = axes ? homing_steps(axes, toward_negative) : STATUS_OK;
    if (r == STATUS_ABORTED) {
        return r;
    }
    if (r != STATUS_OK) {
        protocol_raise_alarm(r);
        return STATUS_SYSTEM_GC_LOCK;
    }
    int32_t pos[N_AXIS];
    system_get_position(pos);
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (axes & (1u << a)) {
            pos[a] = (toward_negative & (1u << a)) ? 0 : (int32_t)(settings.max_travel[a] * settings.steps_per_mm[a]);
        }
    }
    system_set_position(pos);
    plan_sync_position(pos);
    gc_sync_position(pos);
    sys.state = STATE_IDLE;
    return STATUS_OK;
}
