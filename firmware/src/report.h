/* report.h: everything the firmware prints: replies, alarms, messages, status reports, $$ and $I. */
#ifndef REPORT_H
#define REPORT_H
#include <stdint.h>

void report_status_message(uint8_t status);   /* "ok" or "error:N" */
void report_alarm(uint8_t alarm);             /* "ALARM:N" */
void report_message_P(const char *flash_text);/* "[MSG:text]" */
void report_banner(void);
void report_status(void);                     /* "<State|MPos:...|Bf:...|Pn:...>" */
void report_settings(void);                   /* $$ */
void report_build_info(void);                 /* $I */
void report_parser_state(void);               /* $G */
void report_help(void);                       /* $ */
void report_float3(float value);              /* fixed 3 decimals, as GRBL prints millimetres */

#endif
