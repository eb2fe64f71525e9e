/* system.h: machine state, real-time flags set by interrupts, the millisecond clock and the $ commands. */
#ifndef SYSTEM_H
#define SYSTEM_H
#include <stdint.h>
#include "config.h"
#include "override.h"

enum { STATE_IDLE = 0, STATE_RUN, STATE_HOLD, STATE_HOMING, STATE_ALARM, STATE_JOG, STATE_CHECK };

#define RT_STATUS     0x01   /* '?' */
#define RT_HOLD       0x02   /* '!' */
#define RT_RESUME     0x04   /* '~' */
#define RT_RESET      0x08   /* 0x18 */
#define RT_JOG_CANCEL 0x10   /* 0x85 */

typedef struct {
    uint8_t state;
    uint8_t abort;          /* a soft reset is unwinding to the main loop */
    uint8_t resume_pending; /* '~' arrived while still decelerating */
    uint8_t jog_cancel;     /* a jog is stopping: flush the queue once at rest */
    uint8_t jog_cancels;    /* counts finished cancels, so a $J= line waiting for room knows to drop its move */
    uint8_t report_wco;     /* status reports until the next WCO field (GRBL's refresh counter) */
    uint8_t report_ovr;     /* status reports until the next Ov field */
    overrides_t ovr;
} system_t;

extern system_t sys;
extern volatile uint8_t sys_rt;           /* RT_* requests from the receive interrupt */
extern volatile uint16_t sys_rt_ovr;      /* override requests: bit i for byte 0x90 + i */
extern volatile uint8_t sys_rt_alarm;     /* ALARM_* requested by an interrupt (hard limit) */
extern volatile int32_t sys_position[N_AXIS];   /* machine position in steps, kept by the step interrupt */

void system_init(void);
uint32_t millis(void);
void system_get_position(int32_t steps[N_AXIS]);
void system_set_position(const int32_t steps[N_AXIS]);
/* Execute a line starting with '$'; returns STATUS_* (or STATUS_ABORTED). */
uint8_t system_execute_dollar(const char *line);
/* Run the stored startup lines ($N0, $N1), reporting each as ">line:ok" or ">line:error:N". */
void system_execute_startup(void);

#endif
