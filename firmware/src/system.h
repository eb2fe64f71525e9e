/* system.h: machine state, real-time flags set by interrupts, the millisecond clock and the $ commands. */
#ifndef SYSTEM_H
#define SYSTEM_H
#include <stdint.h>
#include "config.h"

enum { STATE_IDLE = 0, STATE_RUN, STATE_HOLD, STATE_HOMING, STATE_ALARM };

#define RT_STATUS 0x01   /* '?' */
#define RT_HOLD   0x02   /* '!' */
#define RT_RESUME 0x04   /* '~' */
#define RT_RESET  0x08   /* 0x18 */

typedef struct {
    uint8_t state;
    uint8_t abort;          /* a soft reset is unwinding to the main loop */
    uint8_t resume_pending; /* '~' arrived while still decelerating */
} system_t;

extern system_t sys;
extern volatile uint8_t sys_rt;           /* RT_* requests from the receive interrupt */
extern volatile uint8_t sys_rt_alarm;     /* ALARM_* requested by an interrupt (hard limit) */
extern volatile int32_t sys_position[N_AXIS];   /* machine position in steps, kept by the step interrupt */

void system_init(void);
uint32_t millis(void);
void system_get_position(int32_t steps[N_AXIS]);
void system_set_position(const int32_t steps[N_AXIS]);
/* Execute a line starting with '$'; returns STATUS_* (or STATUS_ABORTED). */
uint8_t system_execute_dollar(const char *line);

#endif
