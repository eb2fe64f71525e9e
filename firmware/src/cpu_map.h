/* cpu_map.h: every pin and register the firmware touches on the ATmega328P (Arduino Uno/Nano, CNC shield v3). */
#ifndef CPU_MAP_H
#define CPU_MAP_H
#include "config.h"

/* Steppers, as GRBL 1.1 on the CNC shield: step X/Y/Z on D2/D3/D4 (PD2..PD4), direction on D5/D6/D7 (PD5..PD7). */
#define STEP_DDR        DDRD
#define STEP_PORT       PORTD
#define STEP_BIT(axis)  (2 + (axis))
#define STEP_MASK       ((1 << 2) | (1 << 3) | (1 << 4))
#define DIR_DDR         DDRD
#define DIR_PORT        PORTD
#define DIR_BIT(axis)   (5 + (axis))
#define DIR_MASK        ((1 << 5) | (1 << 6) | (1 << 7))
/* X, Y, Z occupy consecutive bits, so an axis mask (bit 0 = X) shifts straight onto the port */
#define STEP_PINS(axes) ((uint8_t)((axes) << 2))
#define DIR_PINS(axes)  ((uint8_t)((axes) << 5))

/* Stepper driver enable, active low: D8 (PB0). */
#define ENABLE_DDR      DDRB
#define ENABLE_PORT     PORTB
#define ENABLE_BIT      0

/* Limit switches, normally open to ground with the internal pull-ups: X D9 (PB1), Y D11 (PB3), Z D12 (PB4).
 * Y moves from GRBL's D10 to D11 (GRBL 1.1's spindle-PWM pin; no spindle here) because D10 is OC1B, the
 * servo's hardware PWM output. All three sit on PCINT0 so one pin-change interrupt watches them. */
#define LIMIT_DDR       DDRB
#define LIMIT_PORT      PORTB
#define LIMIT_PIN       PINB
#define LIMIT_BIT_X     1
#define LIMIT_BIT_Y     3
#define LIMIT_BIT_Z     4
#define LIMIT_MASK      ((1 << LIMIT_BIT_X) | (1 << LIMIT_BIT_Y) | (1 << LIMIT_BIT_Z))
#define LIMIT_PCMSK     PCMSK0
#define LIMIT_PCIE      PCIE0
#define LIMIT_vect      PCINT0_vect

/* Focus servo: OC1B on D10 (PB2), Timer1 fast PWM with ICR1 as TOP gives exactly 50 Hz. */
#define SERVO_DDR       DDRB
#define SERVO_BIT       2

/* User button, normally open to ground with pull-up: A2 (PC2), the shield's "Resume" header. */
#define BUTTON_DDR      DDRC
#define BUTTON_PORT     PORTC
#define BUTTON_PIN      PINC
#define BUTTON_BIT      2

/* Timers: Timer0 = 1 kHz system tick (debounce, dwell, idle disable), Timer1 = 50 Hz servo PWM,
 * Timer2 = fixed-rate step interrupt (CTC, prescaler 8, 2 MHz count). */
#define STEP_TIMER_PRESCALE 8UL
#define STEP_TIMER_TOP      ((F_CPU / STEP_TIMER_PRESCALE / STEP_TICK_HZ) - 1)
#define SERVO_PRESCALE      8UL
#define SERVO_TICKS_PER_US  (F_CPU / SERVO_PRESCALE / 1000000UL)

#if defined(__AVR__) && (STEP_TIMER_TOP > 255 || STEP_TIMER_TOP < 20)
#error "STEP_TICK_HZ does not fit Timer2 (8 bit) at prescaler 8"
#endif

#endif
