/* report.h: everything the firmware prints: replies, alarms, messages, status reports, $$ and $I. */
#ifndef REPORT_H
#define REPORT_H
#include <stdint.h>

void report_status_message(uint8_t status);   /* "ok" or "error:N" */
void report_alarm(uint8_t alarm);             /* "ALARM:N" */
void report_message_P(const char *flash_text);/* "[MSG:text]" */
void report_banner(void);
void report_status(void);                     /* "<State|MPos:...|Bf:...|Pn:...|WCO:...|Ov:...>" */
void report_settings(void);                   /* $$ */
void report_build_info(void);                 /* $I */
void report_parser_state(void);               /* $G */
uint8_t report_ngc_parameters(void);          /* $#; error:7 when a stored record is damaged */
void report_startup_line(uint8_t n, const char *line);          /* "$N0=line" */
void report_startup_result(const char *line, uint8_t status);   /* ">line:ok" after running a startup line */
void report_help(void);                       /* $ */
void report_float3(float value);              /* fixed 3 decimals, as GRBL prints millimetres */

#endif
