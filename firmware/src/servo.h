/* servo.h: the focus servo on OC1B (D10): Timer1 hardware PWM at 50 Hz, pulse from the angle. */
#ifndef SERVO_H
#define SERVO_H
#include <stdint.h>

void servo_init(void);
/* Set the angle (0..180 degrees): pulse = $201 + ($202 - $201) * angle / 180 us. */
void servo_set(float degrees);

#endif
