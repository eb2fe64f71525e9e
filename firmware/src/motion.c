/* motion.c: executes what a G-code block asks: queue moves, dwell after the queue drains, set the servo. */
#include "motion.h"
#include "planner.h"
#include "protocol.h"
#include "servo.h"
#include "status.h"
#include "stepper.h"
#include "system.h"

uint8_t mc_line(const int32_t target[N_AXIS], float feed_mm_min, uint8_t rapid)
{
    uint8_t status = protocol_wait_planner();   /* the one place a line may wait, as in GRBL */
    if (status != STATUS_OK) {
        return status;
    }
    if (plan_buffer_line(target, feed_mm_min, rapid)) {
        if (sys.state == STATE_IDLE) sys.state = STATE_RUN;
        if (sys.state == STATE_RUN) st_wake_up();
    }
    return STATUS_OK;
}

uint8_t mc_dwell(float seconds)
{
    uint8_t status = protocol_wait_idle();
    if (status != STATUS_OK) {
        return status;
    }
    return protocol_delay_ms((uint32_t)(seconds * 1000.0f)) ? STATUS_OK : STATUS_ABORTED;
}

uint8_t mc_servo(float degrees)
{
    uint8_t status = protocol_wait_idle();
    if (status == STATUS_OK) {
        servo_set(degrees);
    }
    return status;
}
