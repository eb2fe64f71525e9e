/* report.c: the text of every reply and push message (strings kept in flash). */
#include <math.h>
#include <avr/pgmspace.h>
#include "config.h"
#include "gcode.h"
#include "limits.h"
#include "planner.h"
#include "report.h"
#include "serial.h"
#include "settings.h"
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
    default: serial_print_P(PSTR("Alarm")); break;
    }
}

void report_status(void)
{
    int32_t pos[N_AXIS];
    system_get_position(pos);
    serial_write('<');
    print_state();
    serial_print_P(PSTR("|MPos:"));
    for (uint8_t a = 0; a < N_AXIS; a++) {
        if (a) serial_write(',');
        report_float3((float)pos[a] / settings.steps_per_mm[a]);
    }
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
    serial_print_P(PSTR(" G54 G17 G21 "));
    serial_print_P(gc.relative ? PSTR("G91") : PSTR("G90"));
    serial_print_P(PSTR(" G94 M5 M9 T0 F"));
    print_uint32((uint32_t)lroundf(gc.feed));
    serial_print_P(PSTR(" S0]"));
    print_eol();
}

void report_help(void)
{
    serial_print_P(PSTR("[HLP:$$ $G $I $X $H $RST=$ $N=val ~ ! ? ctrl-x]"));
    print_eol();
}
