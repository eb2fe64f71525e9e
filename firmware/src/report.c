/* report.c: the text of every reply and push message (strings kept in flash). */
#include <math.h>
#include <avr/pgmspace.h>
#include "config.h"
#include "coords.h"
#include "gcode.h"
#include "limits.h"
#include "planner.h"
#include "report.h"
#include "serial.h"
#include "settings.h"
#include "status.h"
#include "stepper.h"
#include "system.h"

static void print_uint32(uint32_t v)
{
    char digits[11];
    uint8_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) serial_write((uint8_t)digits[--n]);
}

static void print_eol(void)
{
    serial_write('\r');
    serial_write('\n');
}

void report_float3(float value)
{
    if (value < 0.0f) {
        serial_write('-');
        value = -value;
    }
    uint32_t milli = (uint32_t)lroundf(value * 1000.0f);
    print_uint32(milli / 1000u);
    serial_write('.');
    uint16_t frac = (uint16_t)(milli % 1000u);
    serial_write((uint8_t)('0' + frac / 100));
    serial_write((uint8_t)('0' + (frac / 10) % 10));
    serial_write((uint8_t)('0' + frac % 10));
}

void report_status_message(uint8_t status)
{
    if (status == 0) {
        serial_print_P(PSTR("ok"));
    } else {
        serial_print_P(PSTR("error:"));
        print_uint32(status);
    }
    print_eol();
}

void report_alarm(uint8_t alarm)
{
    serial_print_P(PSTR("ALARM:"));
    print_uint32(alarm);
    print_eol();
}

void report_message_P(const char *text)
{
    serial_print_P(PSTR("[MSG:"));
    serial_print_P(text);
    serial_write(']');
    print_eol();
}

void report_banner(void)
{
    print_eol();
    serial_print_P(PSTR(FW_BANNER));
    print_eol();
}

static void print_state(void)
{
    switch (sys.state) {
    case STATE_IDLE: serial_print_P(PSTR("Idle")); break;
    case STATE_RUN: serial_print_P(PSTR("Run")); break;
    case STATE_HOLD: serial_print_P(st_hold_complete() ? PSTR("Hold:0") : PSTR("Hold:1")); break;
    case STATE_HOMING: serial_print_P(PSTR("Home")); break;
    case STATE_JOG: serial_print_P(PSTR("Jog")); break;   /* also while a cancel decelerates, as GRBL */
    case STATE_CHECK: serial_print_P(PSTR("Check")); break;
    default: serial_print_P(PSTR("Alarm")); break;
    }
}

static void print_axes(const float v[N_AXIS])
{
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (a) serial_write(',');
        report_float3(v[a]);
    }
}

static uint8_t busy_state(void)
{
    return sys.state == STATE_RUN || sys.state == STATE_HOLD || sys.state == STATE_HOMING ||
           sys.state == STATE_JOG;
}

/* GRBL 1.1's refresh rule: WCO every 10 reports (30 while moving) and at once after a change; Ov every 10
 * (20 while moving), at once after a change, and in the report after each WCO. */
static void print_wco_ov(void)
{
    if (gc.wco_changed) {
        gc.wco_changed = 0;
        sys.report_wco = 0;
    }
    if (sys.report_wco > 0) {
        sys.report_wco--;
    } else {
        sys.report_wco = busy_state() ? 29 : 9;
        if (sys.report_ovr == 0) sys.report_ovr = 1;
        float wco[N_AXIS];
        gc_wco(wco);
        serial_print_P(PSTR("|WCO:"));
        print_axes(wco);
    }
    if (sys.report_ovr > 0) {
        sys.report_ovr--;
    } else {
        sys.report_ovr = busy_state() ? 19 : 9;
        serial_print_P(PSTR("|Ov:"));
        print_uint32(sys.ovr.feed);
        serial_write(',');
        print_uint32(sys.ovr.rapid);
        serial_write(',');
        print_uint32(sys.ovr.spindle);
    }
}

void report_status(void)
{
    int32_t pos[N_AXIS];
    system_get_position(pos);
    serial_write('<');
    print_state();
    serial_print_P(PSTR("|MPos:"));
    float mpos[N_AXIS];
    for (uint8_t a = 0; a < N_AXIS; a++) mpos[a] = (float)pos[a] / settings.steps_per_mm[a];
    print_axes(mpos);
    if (settings.report_mask & REPORT_BUFFER) {
        serial_print_P(PSTR("|Bf:"));
        print_uint32(plan_free_blocks());
        serial_write(',');
        print_uint32(serial_rx_free());
    }
    uint8_t pins = limits_pressed();
    if (pins) {
        serial_print_P(PSTR("|Pn:"));
        if (pins & 1) serial_write('X');
        if (pins & 2) serial_write('Y');
        if (pins & 4) serial_write('Z');
    }
    print_wco_ov();
    serial_write('>');
    print_eol();
}

static uint8_t is_float_setting(uint16_t n)
{
    return n == 24 || n == 25 || n == 27 || (n >= 100 && n < 140);
}

void report_settings(void)
{
    for (uint8_t i = 0;; i++) {
        uint16_t n = settings_number_at(i);
        float v;
        if (n == 0xFFFF || !settings_get_value(n, &v)) break;
        serial_write('$');
        print_uint32(n);
        serial_write('=');
        if (is_float_setting(n)) report_float3(v);
        else print_uint32((uint32_t)v);
        print_eol();
    }
}

void report_build_info(void)
{
    serial_print_P(PSTR("[VER:" FW_VERSION ":" FW_BUILD_INFO "]"));
    print_eol();
    serial_print_P(PSTR("[OPT:,"));
    print_uint32(PLANNER_BLOCKS - 1);
    serial_write(',');
    print_uint32(RX_BUFFER_SIZE - 1);
    serial_write(']');
    print_eol();
}

void report_parser_state(void)
{
    serial_print_P(PSTR("[GC:G"));
    print_uint32(gc.motion);
    serial_print_P(PSTR(" G"));
    print_uint32(54u + gc.coord_select);
    serial_print_P(PSTR(" G17 G21 "));
    serial_print_P(gc.relative ? PSTR("G91") : PSTR("G90"));
    serial_print_P(PSTR(" G94 M5 M9 T0 F"));
    print_uint32((uint32_t)lroundf(gc.feed));
    serial_print_P(PSTR(" S0]"));
    print_eol();
}

uint8_t report_ngc_parameters(void)
{
    float v[N_AXIS];
    for (uint8_t i = 0; i < N_COORD_RECORDS; i++) {
        if (!coords_read(i, v)) return STATUS_SETTING_READ_FAIL;
    }
    for (uint8_t i = 0; i < N_COORD_RECORDS; i++) {
        coords_read(i, v);
        serial_print_P(PSTR("[G"));
        print_uint32(i == COORD_G28 ? 28u : (i == COORD_G30 ? 30u : 54u + i));
        serial_write(':');
        print_axes(v);
        serial_write(']');
        print_eol();
    }
    serial_print_P(PSTR("[G92:"));
    print_axes(gc.g92);
    serial_print_P(PSTR("]\r\n[TLO:"));
    report_float3(gc.tlo);
    serial_print_P(PSTR("]\r\n[PRB:0.000,0.000,0.000:0]"));   /* no probe: GRBL's values before any probing */
    print_eol();
    return STATUS_OK;
}

void report_startup_line(uint8_t n, const char *line)
{
    serial_print_P(PSTR("$N"));
    print_uint32(n);
    serial_write('=');
    serial_print(line);
    print_eol();
}

void report_startup_result(const char *line, uint8_t status)
{
    serial_write('>');
    serial_print(line);
    serial_write(':');
    report_status_message(status);
}

void report_help(void)
{
    serial_print_P(PSTR("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $C $X $H ~ ! ? ctrl-x]"));
    print_eol();
}
