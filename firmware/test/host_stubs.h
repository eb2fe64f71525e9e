/* host_stubs.h: what the host builds put in place of the AVR's EEPROM and motion control, with call records. */
#ifndef HOST_STUBS_H
#define HOST_STUBS_H
#include <stdint.h>
#include "config.h"
#include "nvm.h"

typedef struct {
    int lines, dwells, servos, jogs, syncs, pauses, program_ends;
    int32_t last_target[N_AXIS];
    float last_feed, last_dwell_s, last_servo_deg;
    uint8_t last_rapid;
    uint8_t last_mode;   /* PLAN_FEED, PLAN_RAPID or PLAN_NO_OVERRIDE */
} motion_log_t;

extern motion_log_t motion_log;
extern uint8_t fake_eeprom[NVM_SIZE];
extern int fake_eeprom_writes;

/* Blank EEPROM, default settings, fresh parser and planner at position 0; clears the log. */
void host_reset(void);

#endif
