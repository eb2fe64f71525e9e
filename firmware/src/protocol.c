/* protocol.c: the main loop and the real-time executor; exactly one ok/error:N per received line. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include <avr/sleep.h>
#include <avr/wdt.h>
#include "button.h"
#include "gcode.h"
#include "line.h"
#include "planner.h"
#include "protocol.h"
#include "report.h"
#include "serial.h"
#include "override.h"
#include "settings.h"
#include "status.h"
#include "stepper.h"
#include "system.h"

static line_t line;
static uint32_t last_busy_ms;

static uint8_t motion_state(void)
{
    return sys.state == STATE_RUN || sys.state == STATE_HOLD || sys.state == STATE_HOMING ||
           sys.state == STATE_JOG;
}

static void sync_positions(void)
{
    int32_t pos[N_AXIS];
    system_get_position(pos);
    plan_sync_position(pos);
    gc_sync_position(pos);
}

void protocol_raise_alarm(uint8_t alarm)
{
    st_kill();
    plan_reset();
    st_reset();
    sync_positions();
    sys.state = STATE_ALARM;
    sys.resume_pending = 0;
    sys.jog_cancel = 0;
    report_alarm(alarm);
}

static void handle_reset(void)
{
    /* a reset while moving loses position (steps may be lost in the abrupt stop): alarm, as GRBL */
    if (sys.state == STATE_HOMING) {
        protocol_raise_alarm(ALARM_HOMING_FAIL_RESET);
    } else if (motion_state() && st_busy()) {
        protocol_raise_alarm(ALARM_ABORT_CYCLE);
    }
    sys.abort = 1;
}

static void handle_hold_resume(uint8_t rt)
{
    if ((rt & RT_HOLD) && sys.state == STATE_RUN) {
        st_hold();
        sys.state = STATE_HOLD;
    }
    if ((rt & RT_RESUME) && sys.state == STATE_HOLD) {
        sys.resume_pending = 1;
    }
    if (sys.state == STATE_HOLD && sys.resume_pending && st_hold_complete()) {
        sys.resume_pending = 0;
        sys.state = STATE_RUN;
        st_resume();
    }
}

/* 0x85, or '!' while jogging: a controlled stop (the hold's deceleration), then the queue is flushed. */
static void handle_jog_cancel(uint8_t rt)
{
    if ((rt & (RT_JOG_CANCEL | RT_HOLD)) && sys.state == STATE_JOG && !sys.jog_cancel) {
        st_hold();
        sys.jog_cancel = 1;
    }
    if (sys.jog_cancel && st_hold_complete()) {
        st_reset();
        plan_reset();
        sync_positions();
        sys.jog_cancel = 0;
        sys.jog_cancels++;
        sys.state = STATE_IDLE;
    }
}

static void handle_overrides(uint16_t requests)
{
    if (requests && ovr_apply(&sys.ovr, requests)) {
        plan_set_overrides(sys.ovr.feed, sys.ovr.rapid);
        st_update_overrides();
        sys.report_ovr = 0;   /* the next status report shows the new values, as GRBL */
    }
}

static void handle_button(void)
{
    uint8_t e = button_take_event();
    if (e == BUTTON_PRESSED) report_message_P(PSTR("BUTTON PRESSED"));
    else if (e == BUTTON_RELEASED) report_message_P(PSTR("BUTTON RELEASED"));
}

static void handle_idle(void)
{
    if ((sys.state == STATE_RUN || sys.state == STATE_JOG) && !sys.jog_cancel && !st_busy()) {
        sys.state = STATE_IDLE;
    }
    if (st_busy() || sys.state == STATE_HOMING) {
        last_busy_ms = millis();
    } else if (settings.idle_delay_ms != 255 && millis() - last_busy_ms >= settings.idle_delay_ms) {
        st_enable_drivers(0);
    }
}

void protocol_execute_realtime(void)
{
    wdt_reset();
    uint8_t sreg = SREG;
    cli();
    uint8_t rt = sys_rt;
    uint8_t alarm = sys_rt_alarm;
    uint16_t ovr = sys_rt_ovr;
    sys_rt = 0;
    sys_rt_alarm = 0;
    sys_rt_ovr = 0;
    SREG = sreg;
    if (rt & RT_RESET) {
        handle_reset();
        return;
    }
    if (alarm) {
        protocol_raise_alarm(alarm);
    }
    handle_overrides(ovr);
    if (rt & RT_STATUS) {
        report_status();
    }
    handle_jog_cancel(rt);
    handle_hold_resume(rt);
    handle_button();
    handle_idle();
}

static void idle_sleep(void)
{
    /* sleep until the next interrupt (the 1 kHz tick at the latest); sei + sleep cannot miss a byte */
    cli();
    if (serial_rx_free() == RX_BUFFER_SIZE - 1 && sys_rt == 0) {
        sleep_enable();
        sei();
        sleep_cpu();
        sleep_disable();
    }
    sei();
}

uint8_t protocol_wait_planner(void)
{
    while (plan_is_full()) {
        protocol_execute_realtime();
        if (sys.abort) return STATUS_ABORTED;
        if (sys.state == STATE_ALARM) return STATUS_SYSTEM_GC_LOCK;
        idle_sleep();
    }
    return sys.state == STATE_ALARM ? STATUS_SYSTEM_GC_LOCK : STATUS_OK;
}

uint8_t protocol_wait_idle(void)
{
    while (st_busy() || sys.state == STATE_HOLD) {
        protocol_execute_realtime();
        if (sys.abort) return STATUS_ABORTED;
        if (sys.state == STATE_ALARM) return STATUS_SYSTEM_GC_LOCK;
        idle_sleep();
    }
    protocol_execute_realtime();
    if (sys.abort) return STATUS_ABORTED;
    return sys.state == STATE_ALARM ? STATUS_SYSTEM_GC_LOCK : STATUS_OK;
}

uint8_t protocol_delay_ms(uint32_t ms)
{
    uint32_t start = millis();
    while (millis() - start < ms) {
        protocol_execute_realtime();
        if (sys.abort) return 0;
        idle_sleep();
    }
    return 1;
}

static void execute_line(const char *text)
{
    uint8_t status;
    if (text[0] == '\0') {
        status = STATUS_OK;
    } else if (text[0] == '$') {
        status = system_execute_dollar(text);
    } else if (sys.state == STATE_ALARM || sys.state == STATE_JOG) {
        status = STATUS_SYSTEM_GC_LOCK;   /* G-code waits until a jog has ended, as in GRBL */
    } else {
        status = gc_execute_line(text);
    }
    if (status != STATUS_ABORTED) {
        report_status_message(status);
    }
}

static void start_up(void)
{
    /* (re)initialise after power-up or a soft reset; the position in steps survives a reset */
    uint8_t was_alarm = sys.state == STATE_ALARM;
    st_kill();
    plan_reset();
    st_reset();
    serial_reset_rx();
    line_reset(&line);
    gc_init();
    sync_positions();
    sys.abort = 0;
    sys.resume_pending = 0;
    sys.jog_cancel = 0;
    sys.report_wco = sys.report_ovr = 0;
    ovr_reset(&sys.ovr);   /* a reset restores 100 %, as GRBL */
    plan_set_overrides(sys.ovr.feed, sys.ovr.rapid);
    sys.state = was_alarm ? STATE_ALARM : STATE_IDLE;
    report_banner();
    if (sys.state == STATE_ALARM) {
        report_message_P(PSTR("'$H'|'$X' to unlock"));
    } else {
        system_execute_startup();   /* never in Alarm: a stored move must not run on an unknown position */
    }
}

void protocol_main_loop(void)
{
    if (settings.flags & FLAG_HOMING) {
        sys.state = STATE_ALARM;   /* position unknown at power-up until homed or unlocked, as GRBL */
    }
    for (;;) {
        start_up();
        while (!sys.abort) {
            protocol_execute_realtime();
            if (sys.abort) break;
            int16_t c = serial_read();
            if (c < 0) {
                idle_sleep();
                continue;
            }
            switch (line_push(&line, (uint8_t)c)) {
            case LINE_READY: execute_line(line.buf); break;
            case LINE_OVERFLOW: report_status_message(STATUS_OVERFLOW); break;
            case LINE_GARBAGE: report_status_message(STATUS_EXPECTED_COMMAND_LETTER); break;
            default: break;
            }
        }
    }
}
