/* system.c: machine state, the 1 kHz system tick (Timer0), position access, and the '$' commands. */
#include <string.h>
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/pgmspace.h>
#include "button.h"
#include "coords.h"
#include "gcode.h"
#include "limits.h"
#include "planner.h"
#include "protocol.h"
#include "report.h"
#include "settings.h"
#include "startup.h"
#include "status.h"
#include "system.h"

system_t sys;
volatile uint8_t sys_rt;
volatile uint16_t sys_rt_ovr;
volatile uint8_t sys_rt_alarm;
volatile int32_t sys_position[N_AXIS];
static volatile uint32_t ms_ticks;

void system_init(void)
{
    TCCR0A = (1 << WGM01);                 /* CTC: 16 MHz / 64 / 250 = 1 kHz */
    OCR0A = 249;
    TCCR0B = (1 << CS01) | (1 << CS00);
    TIMSK0 = (1 << OCIE0A);
    /* INT0/INT1 (on the step pins D2/D3) stay masked; their sense is set to rising edge anyway, because
     * simavr 1.6 polls a low-level-sensed pin every few cycles after each wake from sleep, which cost ten
     * times the host CPU of the whole rest of the simulation. No effect on hardware. */
    EICRA = (1 << ISC11) | (1 << ISC10) | (1 << ISC01) | (1 << ISC00);
}

ISR(TIMER0_COMPA_vect)
{
    ms_ticks++;
    button_tick();
}

uint32_t millis(void)
{
    uint8_t sreg = SREG;
    cli();
    uint32_t t = ms_ticks;
    SREG = sreg;
    return t;
}

void system_get_position(int32_t steps[N_AXIS])
{
    uint8_t sreg = SREG;
    cli();
    for (uint8_t a = 0; a < N_AXIS; a++) steps[a] = sys_position[a];
    SREG = sreg;
}

void system_set_position(const int32_t steps[N_AXIS])
{
    uint8_t sreg = SREG;
    cli();
    for (uint8_t a = 0; a < N_AXIS; a++) sys_position[a] = steps[a];
    SREG = sreg;
}

static uint8_t idle_or_alarm(void)
{
    return sys.state == STATE_IDLE || sys.state == STATE_ALARM;
}

static uint8_t set_setting(const char *line)
{
    uint16_t number;
    float value;
    uint8_t parsed = settings_parse_assignment(line, &number, &value);
    if (parsed != STATUS_OK) {
        return parsed;
    }
    if (!idle_or_alarm()) {
        return STATUS_IDLE_ERROR;
    }
    uint8_t status = settings_store_value(number, value);
    if (status == STATUS_OK) {
        /* steps/mm may have changed: the position in steps is kept, its millimetres follow */
        int32_t pos[N_AXIS];
        system_get_position(pos);
        gc_sync_position(pos);
    }
    return status;
}

static uint8_t unlock(void)
{
    if (!idle_or_alarm()) return STATUS_IDLE_ERROR;
    if (sys.state == STATE_ALARM) {
        sys.state = STATE_IDLE;
        report_message_P(PSTR("Caution: Unlocked"));
    }
    return STATUS_OK;
}

void system_execute_startup(void)
{
    char text[LINE_BUFFER_SIZE + 1];
    for (uint8_t n = 0; n < N_STARTUP_LINES; n++) {
        uint8_t ok = startup_read(n, text);
        if (ok && text[0] == '\0') continue;
        uint8_t status = ok ? gc_execute_line(text) : STATUS_SETTING_READ_FAIL;
        if (status == STATUS_ABORTED) return;
        report_startup_result(text, status);
    }
}

static uint8_t home(void)
{
    if (!(settings.flags & FLAG_HOMING)) return STATUS_SETTING_DISABLED;
    if (!idle_or_alarm()) return STATUS_IDLE_ERROR;
    uint8_t status = limits_go_home();
    if (status == STATUS_OK) system_execute_startup();   /* as GRBL: after a successful $H */
    return status;
}

static void reload_coordinates(void)
{
    coords_read(gc.coord_select, gc.coord_system);
    gc.wco_changed = 1;
}

/* $RST=$ settings, $RST=# coordinate data, $RST=* both and the startup lines. */
static uint8_t restore_defaults(const char *line)
{
    if (strncmp_P(line, PSTR("$RST="), 5) != 0 || line[5] == '\0' || line[6] != '\0') {
        return STATUS_INVALID_STATEMENT;
    }
    char what = line[5];
    if (what != '$' && what != '#' && what != '*') return STATUS_INVALID_STATEMENT;
    if (!idle_or_alarm()) return STATUS_IDLE_ERROR;
    if (what != '#') {
        settings_restore_defaults();
        settings_write();
    }
    if (what != '$') {
        coords_clear_all();
        reload_coordinates();
    }
    if (what == '*') startup_clear_all();
    report_message_P(PSTR("Restoring defaults"));
    int32_t pos[N_AXIS];
    system_get_position(pos);
    gc_sync_position(pos);
    return STATUS_OK;
}

static void request_reset(void)
{
    uint8_t sreg = SREG;
    cli();
    sys_rt |= RT_RESET;
    SREG = sreg;
}

/* $C: check mode on (from Idle), or off through a soft reset, as GRBL. */
static uint8_t toggle_check_mode(void)
{
    if (sys.state == STATE_CHECK) {
        report_message_P(PSTR("Disabled"));
        request_reset();   /* after the ok: the banner follows and the parser starts afresh */
        return STATUS_OK;
    }
    if (sys.state != STATE_IDLE) return STATUS_IDLE_ERROR;
    sys.state = STATE_CHECK;
    gc.check = 1;
    report_message_P(PSTR("Enabled"));
    return STATUS_OK;
}

static uint8_t list_startup_lines(void)
{
    char text[LINE_BUFFER_SIZE + 1];
    for (uint8_t n = 0; n < N_STARTUP_LINES; n++) {
        if (!startup_read(n, text)) return STATUS_SETTING_READ_FAIL;
        report_startup_line(n, text);
    }
    return STATUS_OK;
}

/* $Nn=line: stored when it parses; it runs at the next reset (GRBL runs it once now as well; we do not, so
 * storing a line never moves the stage). */
static uint8_t store_startup_line(const char *line)
{
    if (sys.state != STATE_IDLE) return STATUS_IDLE_ERROR;
    if (line[2] < '0' || line[2] >= '0' + N_STARTUP_LINES || line[3] != '=') return STATUS_INVALID_STATEMENT;
    const char *text = line + 4;
    if (text[0] == '$') return STATUS_INVALID_STATEMENT;   /* no $ commands or jogs at start-up */
    gc_block_t block;
    uint8_t status = gc_parse_line(text, &block, 0);
    if (status == STATUS_OK) startup_write((uint8_t)(line[2] - '0'), text);
    return status;
}

static uint8_t startup_lines(const char *line)
{
    if (line[2] == '\0') return idle_or_alarm() ? list_startup_lines() : STATUS_IDLE_ERROR;
    return store_startup_line(line);
}

static uint8_t jog(const char *line)
{
    if (line[2] != '=') return STATUS_INVALID_STATEMENT;
    if (sys.state != STATE_IDLE && sys.state != STATE_JOG) return STATUS_IDLE_ERROR;
    return gc_execute_jog(line + 3);
}

static uint8_t ngc_parameters(const char *line)
{
    if (line[2] != '\0') return STATUS_INVALID_STATEMENT;
    if (!idle_or_alarm()) return STATUS_IDLE_ERROR;
    return report_ngc_parameters();
}

uint8_t system_execute_dollar(const char *line)
{
    switch (line[1]) {
    case '\0': report_help(); return STATUS_OK;
    case '$':
        if (line[2] != '\0') return STATUS_INVALID_STATEMENT;
        report_settings();
        return STATUS_OK;
    case 'I':
        if (line[2] != '\0') return STATUS_INVALID_STATEMENT;
        report_build_info();
        return STATUS_OK;
    case 'G':
        if (line[2] != '\0') return STATUS_INVALID_STATEMENT;
        report_parser_state();
        return STATUS_OK;
    case '#': return ngc_parameters(line);
    case 'J': return jog(line);
    case 'C': return line[2] == '\0' ? toggle_check_mode() : STATUS_INVALID_STATEMENT;
    case 'N': return startup_lines(line);
#ifdef TEST_STARVE_WATCHDOG
    case 'W':   /* test builds only (make starve): hang with interrupts on, so the watchdog must reset the chip */
        for (;;) {
        }
#endif
    case 'X': return line[2] == '\0' ? unlock() : STATUS_INVALID_STATEMENT;
    case 'H': return line[2] == '\0' ? home() : STATUS_INVALID_STATEMENT;
    case 'R': return restore_defaults(line);
    default: return set_setting(line);
    }
}
