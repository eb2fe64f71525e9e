/* main.c: tppscan stage firmware for the ATmega328P: GRBL 1.1 line protocol, XYZ steppers, focus servo. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>
#include "button.h"
#include "coords.h"
#include "limits.h"
#include <avr/pgmspace.h>
#include "protocol.h"
#include "report.h"
#include "serial.h"
#include "servo.h"
#include "settings.h"
#include "startup.h"
#include "stepper.h"
#include "system.h"

/* After a watchdog reset the watchdog stays on at its shortest period: switch it off before C starts. */
void early_watchdog_off(void) __attribute__((naked, used, section(".init3")));
void early_watchdog_off(void)
{
    MCUSR = 0;
    wdt_disable();
}

int main(void)
{
    uint8_t settings_ok = settings_init();
    /* valid settings but damaged coordinate or startup records (an EEPROM from older firmware): zero them */
    uint8_t records_damaged = settings_ok ? (uint8_t)(coords_repair() + startup_repair()) : 0;
    serial_init();
    system_init();
    st_init();
    limits_init();
    servo_init();
    button_init();
    wdt_enable(WATCHDOG_TIMEOUT);
    sei();
    if (!settings_ok) {
        report_message_P(PSTR("EEPROM settings invalid: defaults restored"));
    }
    if (records_damaged) {
        report_message_P(PSTR("EEPROM offsets or startup lines invalid: cleared"));
    }
    protocol_main_loop();
    return 0;
}
