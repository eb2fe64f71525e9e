/* button.c: a 1 ms sampled button: a level must hold for $204 ms before it counts as a press or release. */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/delay.h>
#include "button.h"
#include "cpu_map.h"
#include "settings.h"

static uint8_t stable, count;
static volatile uint8_t event;

static uint8_t read_pressed(void)
{
    return (BUTTON_PIN & (1 << BUTTON_BIT)) == 0;   /* closed to ground against the pull-up */
}

void button_init(void)
{
    BUTTON_DDR &= (uint8_t)~(1 << BUTTON_BIT);
    BUTTON_PORT |= (1 << BUTTON_BIT);
    _delay_us(20);   /* let the pull-up charge the line before the first sample */
    stable = read_pressed();
}

void button_tick(void)
{
    uint8_t now = read_pressed();
    if (now == stable) {
        count = 0;
        return;
    }
    if (++count >= settings.button_debounce_ms) {
        stable = now;
        count = 0;
        event = now ? BUTTON_PRESSED : BUTTON_RELEASED;
    }
}

uint8_t button_take_event(void)
{
    uint8_t sreg = SREG;
    cli();
    uint8_t e = event;
    event = BUTTON_NONE;
    SREG = sreg;
    return e;
}
