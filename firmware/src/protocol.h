/* protocol.h: the main loop: real-time requests, line assembly and dispatch, waits that keep answering '?'. */
#ifndef PROTOCOL_H
#define PROTOCOL_H
#include <stdint.h>

void protocol_main_loop(void);
/* Serve real-time requests (status, hold, resume, reset, alarms, button); call from every wait loop. */
void protocol_execute_realtime(void);
/* Wait until all queued motion has finished: STATUS_OK, STATUS_ABORTED (reset) or error:9 (alarm). */
uint8_t protocol_wait_idle(void);
/* Wait ms milliseconds serving real-time requests; 0 when a reset cut it short. */
uint8_t protocol_delay_ms(uint32_t ms);
/* Wait for room in the planner; STATUS_OK, STATUS_ABORTED or error:9. */
uint8_t protocol_wait_planner(void);
/* Stop everything and enter the alarm state, reporting ALARM:n. */
void protocol_raise_alarm(uint8_t alarm);

#endif
