/* test_offsets.c: the GRBL 1.1 additions on the host: work coordinates (G10 L2/L20, G92, G54..G59, G53,
 * G28/G30, G43.1/G49) and their EEPROM records, startup-line records, $J= jog parsing, the override arithmetic,
 * re-planning a running block for an override, and the move-length bound. */
#include <math.h>
#include <string.h>
#include "coords.h"
#include "gcode.h"
#include "harness.h"
#include "host_stubs.h"
#include "override.h"
#include "planner.h"
#include "settings.h"
#include "st_core.h"
#include "startup.h"
#include "status.h"

static void test_coordinate_records(void)
{
    host_reset();
    float v[N_AXIS];
    for (uint8_t i = 0; i < N_COORD_RECORDS; i++) {
        CHECK(coords_read(i, v));   /* a blank EEPROM reads as valid zeros: nothing written at first boot */
        CHECK(v[0] == 0.0f && v[1] == 0.0f && v[2] == 0.0f);
    }
    const float w[N_AXIS] = {1.5f, -2.25f, 3.0f};
    coords_write(3, w);
    CHECK(coords_read(3, v));
    CHECK(memcmp(v, w, sizeof(w)) == 0);
    fake_eeprom[COORDS_ADDR + 3 * 13 + 2] ^= 0x10;   /* one bit of G57 */
    CHECK(!coords_read(3, v));
    CHECK(v[0] == 0.0f);
    CHECK_EQ(coords_repair(), 1);
    CHECK(coords_read(3, v));
    CHECK_EQ(coords_repair(), 0);
}

static void test_startup_records(void)
{
    host_reset();
    char buf[LINE_BUFFER_SIZE + 1];
    CHECK(startup_read(0, buf) && buf[0] == '\0');
    startup_write(1, "G91G0");
    CHECK(startup_read(1, buf) && strcmp(buf, "G91G0") == 0);
    fake_eeprom[STARTUP_ADDR + (LINE_BUFFER_SIZE + 2) + 1] ^= 0x01;
    CHECK(!startup_read(1, buf) && buf[0] == '\0');
    CHECK_EQ(startup_repair(), 1);
    CHECK(startup_read(1, buf) && buf[0] == '\0');
}

static void test_g10_and_work_moves(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G0X5Y2"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G10L20P1X0Y0"), STATUS_OK);   /* zero here */
    float v[N_AXIS];
    CHECK(coords_read(0, v));
    CHECK_NEAR(v[0], 5.0, 1e-6);
    CHECK_NEAR(v[1], 2.0, 1e-6);
    CHECK(gc.wco_changed);
    CHECK_EQ(gc_execute_line("G0X1"), STATUS_OK);
    CHECK_EQ(motion_log.last_target[0], 2400);
    CHECK_EQ(gc_execute_line("G53G0X1"), STATUS_OK);          /* machine coordinates */
    CHECK_EQ(motion_log.last_target[0], 400);
    CHECK_EQ(gc_execute_line("G10L2P2X10"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G55X0"), STATUS_OK);
    CHECK_EQ(motion_log.last_target[0], 4000);
    CHECK_EQ(gc.coord_select, 1);
    CHECK_EQ(gc_execute_line("G10L2P0X20"), STATUS_OK);       /* P0: the active system (G55) */
    CHECK(coords_read(1, v));
    CHECK_NEAR(v[0], 20.0, 1e-6);
    CHECK_NEAR(gc.coord_system[0], 20.0, 1e-6);
    CHECK_EQ(gc_execute_line("G10L2P1.5X0"), STATUS_COMMAND_VALUE_NOT_INTEGER);
    CHECK_EQ(gc_execute_line("G10L2P-1X0"), STATUS_NEGATIVE_VALUE);
    CHECK_EQ(gc_execute_line("G10L2P7X0"), STATUS_UNSUPPORTED_COORD_SYS);
    CHECK_EQ(gc_execute_line("G10L1P1X0"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(gc_execute_line("G10P1X0"), STATUS_VALUE_WORD_MISSING);
    CHECK_EQ(gc_execute_line("G0G10L2P1X0"), STATUS_AXIS_COMMAND_CONFLICT);
    CHECK_EQ(gc_execute_line("G10G92L2P1X0"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(gc_execute_line("L2X1"), STATUS_UNUSED_WORDS);
    CHECK_EQ(gc_execute_line("G54G55"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(gc_execute_line("G55.1"), STATUS_COMMAND_VALUE_NOT_INTEGER);   /* as GRBL */
    CHECK_EQ(gc_execute_line("G38.2X1"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(gc_execute_line("G1.5X1"), STATUS_COMMAND_VALUE_NOT_INTEGER);
}

static void test_refused_line_changes_nothing(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G10L2P2X10"), STATUS_OK);
    int lines = motion_log.lines;
    CHECK_EQ(gc_execute_line("G55G91G0X80"), STATUS_TRAVEL_EXCEEDED);
    CHECK_EQ(gc.coord_select, 0);       /* neither G55 nor G91 took effect */
    CHECK(!gc.relative);
    CHECK_EQ(motion_log.lines, lines);
}

static void test_g92_g28_tlo(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G0X2Z1"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G92X0Z0"), STATUS_OK);
    CHECK_NEAR(gc.g92[0], 2.0, 1e-6);
    CHECK_EQ(gc_execute_line("G0X1"), STATUS_OK);
    CHECK_EQ(motion_log.last_target[0], 1200);
    CHECK_EQ(gc_execute_line("G43.1Z0.5"), STATUS_OK);
    float wco[N_AXIS];
    gc_wco(wco);
    CHECK_NEAR(wco[2], 1.5, 1e-6);
    CHECK_EQ(gc_execute_line("G0Z0"), STATUS_OK);
    CHECK_EQ(motion_log.last_target[2], 600);
    CHECK_EQ(gc_execute_line("G43.1X1"), STATUS_G43_DYNAMIC_AXIS_ERROR);
    CHECK_EQ(gc_execute_line("G49Z1"), STATUS_G43_DYNAMIC_AXIS_ERROR);
    CHECK_EQ(gc_execute_line("G49"), STATUS_OK);
    CHECK_NEAR(gc.tlo, 0.0, 0);
    CHECK_EQ(gc_execute_line("G92.1"), STATUS_OK);
    CHECK_NEAR(gc.g92[0], 0.0, 0);
    CHECK_EQ(gc_execute_line("G92"), STATUS_NO_AXIS_WORDS);
    /* G28.1 stores the machine position; G28 X.. goes through the point to the stored X only */
    CHECK_EQ(gc_execute_line("G0X3Y4"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G28.1"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G0X0Y0"), STATUS_OK);
    int lines = motion_log.lines;
    CHECK_EQ(gc_execute_line("G28X1"), STATUS_OK);
    CHECK_EQ(motion_log.lines, lines + 2);
    CHECK_EQ(motion_log.last_target[0], 1200);
    CHECK_EQ(motion_log.last_target[1], 0);
    CHECK_EQ(gc_execute_line("G30"), STATUS_OK);    /* G30 was never set: machine zero */
    CHECK_EQ(motion_log.last_target[0], 0);
}

static void test_jog_parsing(void)
{
    host_reset();
    gc_block_t b;
    CHECK_EQ(gc_parse_line("G91X1F100", &b, 1), STATUS_OK);
    CHECK_EQ(gc_parse_line("G20G53X1F100", &b, 1), STATUS_OK);
    CHECK_EQ(gc_parse_line("X1", &b, 1), STATUS_UNDEFINED_FEED_RATE);
    CHECK_EQ(gc_parse_line("G0X1F100", &b, 1), STATUS_INVALID_JOG_COMMAND);
    CHECK_EQ(gc_parse_line("G10L2P1X1F100", &b, 1), STATUS_INVALID_JOG_COMMAND);
    CHECK_EQ(gc_parse_line("G43.1Z1F100", &b, 1), STATUS_INVALID_JOG_COMMAND);
    CHECK_EQ(gc_parse_line("X1F100P1", &b, 1), STATUS_UNUSED_WORDS);
    CHECK_EQ(gc_parse_line("G20X1", &b, 0), STATUS_UNSUPPORTED_COMMAND);   /* G20 outside a jog */
    CHECK_EQ(gc_execute_jog("G91X1F6000"), STATUS_OK);
    CHECK_EQ(motion_log.jogs, 1);
    CHECK_EQ(motion_log.last_target[0], 400);
    CHECK_EQ(motion_log.last_mode, PLAN_NO_OVERRIDE);
    CHECK(!gc.relative);                                /* the jog's G91 stayed in the jog */
    CHECK_EQ(gc_execute_jog("G20X0.1F1"), STATUS_OK);   /* 2.54 mm, absolute (modal G90) */
    CHECK_EQ(motion_log.last_target[0], 1016);
    CHECK_NEAR(motion_log.last_feed, 25.4, 1e-4);
    CHECK_EQ(gc_execute_jog("X71F100"), STATUS_TRAVEL_EXCEEDED);
    CHECK_EQ(motion_log.jogs, 2);
}

static void test_override_arithmetic(void)
{
    overrides_t o;
    ovr_reset(&o);
    CHECK(!ovr_apply(&o, 0));
    CHECK(ovr_apply(&o, 1u << (0x91 - 0x90)));
    CHECK_EQ(o.feed, 110);
    CHECK(ovr_apply(&o, (1u << 1) | (1u << 3)));       /* +10 and +1 in one go */
    CHECK_EQ(o.feed, 121);
    for (int i = 0; i < 20; i++) ovr_apply(&o, 1u << 1);
    CHECK_EQ(o.feed, 200);
    for (int i = 0; i < 30; i++) ovr_apply(&o, 1u << 2);
    CHECK_EQ(o.feed, 10);
    CHECK(ovr_apply(&o, (1u << 0) | (1u << 4)));       /* reset, then -1 */
    CHECK_EQ(o.feed, 99);
    CHECK(ovr_apply(&o, 1u << (0x97 - 0x90)));
    CHECK_EQ(o.rapid, 25);
    CHECK(ovr_apply(&o, (1u << (0x95 - 0x90)) | (1u << (0x96 - 0x90))));
    CHECK_EQ(o.rapid, 50);
    CHECK(ovr_apply(&o, 1u << (0x9B - 0x90)));
    CHECK_EQ(o.spindle, 90);
    CHECK(!ovr_apply(&o, 1u << (0x98 - 0x90)));        /* 0x98 is unassigned */
}

/* A running block whose override rises then falls still ends with every step, at rest. */
static void test_override_replans_running_block(void)
{
    host_reset();
    int32_t t[N_AXIS] = {8000, 0, 0};
    plan_buffer_line(t, 300.0f, PLAN_FEED);            /* 2000 steps/s */
    plan_block_t *b = plan_current();
    st_core_t c;
    core_load(&c, b);
    uint8_t done = 0;
    long steps = 0, ticks = 0;
    for (; ticks < 5000 && !done; ticks++) steps += core_tick(&c, 0, &done) & 1;
    CHECK_NEAR(c.rate / 65536.0, 2000.0, 1.0);
    plan_set_overrides(200, 100);
    plan_block_rates(b, &b->nominal_q16, &b->ramp_steps);
    core_retarget(&c);
    for (; ticks < 9000 && !done; ticks++) steps += core_tick(&c, 0, &done) & 1;
    CHECK_NEAR(c.rate / 65536.0, 4000.0, 1.0);         /* capped at $110 = 600 mm/min */
    plan_set_overrides(10, 100);
    plan_block_rates(b, &b->nominal_q16, &b->ramp_steps);
    core_retarget(&c);
    uint32_t last = c.rate;
    for (; ticks < 400000L && !done; ticks++) {
        steps += core_tick(&c, 0, &done) & 1;
        CHECK(last - c.rate <= b->accel_q16_tick + 1 || c.rate >= last);   /* never faster than the accel */
        last = c.rate;
    }
    CHECK(done);
    CHECK_EQ(steps, 8000);
    CHECK(c.rate <= b->floor_q16 + b->accel_q16_tick);  /* ended at rest */
}

static void test_slow_feed_is_not_raised_to_the_ramp_floor(void)
{
    host_reset();
    int32_t t[N_AXIS] = {400, 0, 0};
    plan_buffer_line(t, 10.0f, PLAN_FEED);              /* 10 mm/min = 66.7 steps/s, below sqrt(accel) = 141 */
    CHECK_NEAR(plan_current()->nominal_q16 / 65536.0, 66.67, 0.1);
}

static void test_move_length_bound(void)
{
    host_reset();
    settings.flags &= (uint8_t)~FLAG_SOFT_LIMITS;
    settings.steps_per_mm[0] = 100000.0f;
    CHECK_EQ(gc_execute_line("G90G0X-19999"), STATUS_INVALID_TARGET);   /* -2e9 steps */
    CHECK_EQ(gc_execute_line("G0X-9999"), STATUS_OK);                   /* -9.999e8 */
    CHECK_EQ(gc_execute_line("G0X9999"), STATUS_OK);                    /* +1.9998e9 steps: still right way */
    plan_discard_current();
    const plan_block_t *b = plan_current();
    CHECK(b != NULL);
    CHECK(b->steps[0] > 1999700000L && b->steps[0] < 1999900000L);   /* float targets: within a few steps */
    CHECK_EQ(b->dir_negative, 0);
    /* the planner refuses a delta it cannot count (a caller that skipped the parser's bound) */
    int32_t far[N_AXIS] = {2000000000, 0, 0};
    int32_t from[N_AXIS] = {-2000000000, 0, 0};
    plan_sync_position(from);
    CHECK(!plan_buffer_line(far, 100.0f, PLAN_FEED));
    CHECK_EQ(settings_store_value(130, 20000.0f), STATUS_INVALID_STATEMENT);   /* 2e9 steps of travel */
}

int main(void)
{
    RUN(test_coordinate_records);
    RUN(test_startup_records);
    RUN(test_g10_and_work_moves);
    RUN(test_refused_line_changes_nothing);
    RUN(test_g92_g28_tlo);
    RUN(test_jog_parsing);
    RUN(test_override_arithmetic);
    RUN(test_override_replans_running_block);
    RUN(test_slow_feed_is_not_raised_to_the_ramp_floor);
    RUN(test_move_length_bound);
    return HARNESS_RESULT();
}
