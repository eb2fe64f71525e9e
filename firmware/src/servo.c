/* servo.c: Timer1 in fast PWM mode 14 (TOP = ICR1) at prescaler 8: 0.5 us resolution, 20 ms frame. */
#include <avr/io.h>
#include "cpu_map.h"
#include "servo.h"
#include "settings.h"

void servo_init(void)
{
    SERVO_DDR |= (1 << SERVO_BIT);
    PORTB &= (uint8_t)~(1 << SERVO_BIT);
    ICR1 = (uint16_t)(SERVO_PERIOD_US * SERVO_TICKS_PER_US - 1);
    OCR1B = 0;
    TCCR1A = (1 << WGM11);                            /* output stays off until the first M280 */
    TCCR1B = (1 << WGM13) | (1 << WGM12) | (1 << CS11);
}

void servo_set(float degrees)
{
    float span = (float)(settings.servo_max_us - settings.servo_min_us);
    float pulse_us = (float)settings.servo_min_us + span * degrees / 180.0f;
    uint16_t ticks = (uint16_t)(pulse_us * (float)SERVO_TICKS_PER_US + 0.5f);
    OCR1B = ticks - 1;   /* the pin is high for OCR1B + 1 ticks */
    TCCR1A = (1 << WGM11) | (1 << COM1B1);
}
