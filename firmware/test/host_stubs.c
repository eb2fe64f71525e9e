/* host_stubs.c: a RAM "EEPROM" and motion-control stubs so the pure modules run on the host (tests, fuzzer).
 * mc_line really queues into the planner, dropping the oldest block when it is full (the stepper's job). */
#include <string.h>
#include "gcode.h"
#include "host_stubs.h"
#include "motion.h"
#include "planner.h"
#include "settings.h"
#include "status.h"

motion_log_t motion_log;
uint8_t fake_eeprom[NVM_SIZE];
int fake_eeprom_writes;

void nvm_read(uint16_t addr, void *dst, uint16_t len)
{
    if ((uint32_t)addr + len <= NVM_SIZE) memcpy(dst, fake_eeprom + addr, len);
}

void nvm_write(uint16_t addr, const void *src, uint16_t len)
{
    if ((uint32_t)addr + len <= NVM_SIZE) {
        memcpy(fake_eeprom + addr, src, len);
        fake_eeprom_writes++;
    }
}

uint8_t mc_line(const int32_t target[N_AXIS], float feed_mm_min, uint8_t mode)
{
    if (gc.check) return STATUS_OK;
    if (plan_is_full()) plan_discard_current();
    plan_buffer_line(target, feed_mm_min, mode);
    motion_log.lines++;
    memcpy(motion_log.last_target, target, sizeof(motion_log.last_target));
    motion_log.last_feed = feed_mm_min;
    motion_log.last_rapid = mode == PLAN_RAPID;
    motion_log.last_mode = mode;
    return STATUS_OK;
}

uint8_t mc_jog(const int32_t target[N_AXIS], float feed_mm_min)
{
    motion_log.jogs++;
    return mc_line(target, feed_mm_min, PLAN_NO_OVERRIDE);
}

uint8_t mc_dwell(float seconds)
{
    motion_log.dwells++;
    motion_log.last_dwell_s = seconds;
    return STATUS_OK;
}

uint8_t mc_servo(float degrees)
{
    motion_log.servos++;
    motion_log.last_servo_deg = degrees;
    return STATUS_OK;
}

uint8_t mc_sync(void)
{
    motion_log.syncs++;
    return STATUS_OK;
}

uint8_t mc_pause(void)
{
    motion_log.pauses++;
    return STATUS_OK;
}

void mc_program_end(void)
{
    motion_log.program_ends++;
}

void host_reset(void)
{
    memset(fake_eeprom, 0xFF, sizeof(fake_eeprom));
    fake_eeprom_writes = 0;
    settings_init();
    gc_init();
    plan_reset();
    plan_set_overrides(100, 100);
    int32_t zero[N_AXIS] = {0};
    plan_sync_position(zero);
    gc_sync_position(zero);
    memset(&motion_log, 0, sizeof(motion_log));
}
