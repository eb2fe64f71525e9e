/* status.h: the numbered answers of the line protocol (error:N, ALARM:N), numbered as in GRBL 1.1. */
#ifndef STATUS_H
#define STATUS_H

#define STATUS_OK                      0
#define STATUS_EXPECTED_COMMAND_LETTER 1
#define STATUS_BAD_NUMBER_FORMAT       2
#define STATUS_INVALID_STATEMENT       3
#define STATUS_NEGATIVE_VALUE          4
#define STATUS_SETTING_DISABLED        5
#define STATUS_SETTING_STEP_PULSE_MIN  6
#define STATUS_SETTING_READ_FAIL       7
#define STATUS_IDLE_ERROR              8
#define STATUS_SYSTEM_GC_LOCK          9
#define STATUS_SOFT_LIMIT_ERROR        10
#define STATUS_OVERFLOW                11
#define STATUS_MAX_STEP_RATE_EXCEEDED  12
#define STATUS_TRAVEL_EXCEEDED         15
#define STATUS_INVALID_JOG_COMMAND     16
#define STATUS_UNSUPPORTED_COMMAND     20
#define STATUS_MODAL_GROUP_VIOLATION   21
#define STATUS_UNDEFINED_FEED_RATE     22
#define STATUS_COMMAND_VALUE_NOT_INTEGER 23
#define STATUS_AXIS_COMMAND_CONFLICT   24
#define STATUS_WORD_REPEATED           25
#define STATUS_NO_AXIS_WORDS           26
#define STATUS_INVALID_LINE_NUMBER     27
#define STATUS_VALUE_WORD_MISSING      28
#define STATUS_UNSUPPORTED_COORD_SYS   29
#define STATUS_AXIS_WORDS_EXIST        31
#define STATUS_INVALID_TARGET          33
#define STATUS_UNUSED_WORDS            36
#define STATUS_G43_DYNAMIC_AXIS_ERROR  37
#define STATUS_MAX_VALUE_EXCEEDED      38

#define STATUS_ABORTED 255   /* internal: a soft reset cut the line short; no reply is sent */

#define ALARM_HARD_LIMIT        1
#define ALARM_ABORT_CYCLE       3
#define ALARM_HOMING_FAIL_RESET 6
#define ALARM_HOMING_FAIL_PULLOFF 8
#define ALARM_HOMING_FAIL_APPROACH 9

#endif
