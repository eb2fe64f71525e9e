/* motion.c: executes what a G-code block asks: queue moves and jogs, dwell after the queue drains, set the servo,
 * pause (M0) and end a program (M2, M30).
 * Check mode ($C) stops here: the parser runs in full, nothing moves. */
#include <avr/pgmspace.h>
#include "gcode.h"
#include "motion.h"
#include "override.h"
#include "planner.h"
#include "protocol.h"
#include "report.h"
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

uint8_t mc_sync(void)
{
    return sys.state == STATE_CHECK ? STATUS_OK : protocol_wait_idle();
}

uint8_t mc_pause(void)
{
    uint8_t status = mc_sync();
    if (status != STATUS_OK || sys.state == STATE_CHECK) {
        return status;
    }
    st_hold();   /* at rest already: the hold is complete at once (Hold:0), as GRBL's feed hold from Idle */
    sys.state = STATE_HOLD;
    return protocol_wait_idle();   /* '~' resumes (handle_hold_resume), a reset aborts the line */
}

void mc_program_end(void)
{
    ovr_reset(&sys.ovr);   /* GRBL 1.1's RESTORE_OVERRIDES_AFTER_PROGRAM_END, on by default */
    plan_set_overrides(sys.ovr.feed, sys.ovr.rapid);
    st_update_overrides();
    sys.report_ovr = 0;   /* the next status report carries Ov: */
    report_message_P(PSTR("Pgm End"));
}
