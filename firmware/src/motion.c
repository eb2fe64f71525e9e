/* motion.c: executes what a G-code block asks: queue moves and jogs, dwell after the queue drains, set the servo.
 * Check mode ($C) stops here: the parser runs in full, nothing moves. */
#include "gcode.h"
#include "motion.h"
#include "planner.h"
#include "protocol.h"
#include "servo.h"
#include "status.h"
#include "stepper.h"
#include "system.h"

uint8_t mc_line(const int32_t target[N_AXIS], float feed_mm_min, uint8_t mode)
{
    if (sys.state == STATE_CHECK) return STATUS_OK;
    uint8_t status = protocol_wait_planner();   /* the one place a line may wait, as in GRBL */
    if (status != STATUS_OK) {
        return status;
    }
    if (plan_buffer_line(target, feed_mm_min, mode)) {
        if (sys.state == STATE_IDLE) sys.state = STATE_RUN;
        if (sys.state == STATE_RUN) st_wake_up();
    }
    return STATUS_OK;
}

uint8_t mc_jog(const int32_t target[N_AXIS], float feed_mm_min)
{
    uint8_t cancels = sys.jog_cancels;
    uint8_t status = protocol_wait_planner();
    if (status != STATUS_OK) {
        return status;
    }
    if (sys.jog_cancel || sys.jog_cancels != cancels) {
        int32_t pos[N_AXIS];
        system_get_position(pos);
        gc_sync_position(pos);   /* GRBL drops a jog line that arrives during a cancel, too */
        return STATUS_OK;
    }
    if (plan_buffer_line(target, feed_mm_min, PLAN_NO_OVERRIDE)) {
        if (sys.state == STATE_IDLE) sys.state = STATE_JOG;
        st_wake_up();
    }
    return STATUS_OK;
}

uint8_t mc_dwell(float seconds)
{
    if (sys.state == STATE_CHECK) return STATUS_OK;
    uint8_t status = protocol_wait_idle();
    if (status != STATUS_OK) {
        return status;
    }
    return protocol_delay_ms((uint32_t)(seconds * 1000.0f)) ? STATUS_OK : STATUS_ABORTED;
}

uint8_t mc_servo(float degrees)
{
    if (sys.state == STATE_CHECK) return STATUS_OK;
    uint8_t status = protocol_wait_idle();
    if (status == STATUS_OK) {
        servo_set(degrees);
    }
    return status;
}
