/* test_gcode.c: the G-code parser's checks (GRBL error numbers) and what executed blocks ask of motion. */
#include <string.h>
#include "gcode.h"
#include "harness.h"
#include "host_stubs.h"
#include "planner.h"
#include "settings.h"
#include "status.h"

static uint8_t parse(const char *line)
{
    gc_block_t b;
    return gc_parse_line(line, &b, 0);
}

static void test_read_float(void)
{
    const char *cases[] = {"1", "-2.5", "+.5", "0000123.4500", "7.", "999999999"};
    const float want[] = {1.0f, -2.5f, 0.5f, 123.45f, 7.0f, 999999999.0f};
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        uint8_t k = 0;
        float v = 0;
        CHECK(gc_read_float(cases[i], &k, &v));
        CHECK_NEAR(v, want[i], 1e-3 * (1.0 + want[i] * (want[i] > 0 ? 1 : -1)));
        CHECK_EQ(k, strlen(cases[i]));
    }
    const char *bad[] = {"", "-", ".", "+.", "1234567890", "X"};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t k = 0;
        float v;
        CHECK(!gc_read_float(bad[i], &k, &v));
    }
    uint8_t k = 0;
    float v;
    CHECK(gc_read_float("1.5.3", &k, &v));   /* stops at the second dot; the parser then sees '.' */
    CHECK_EQ(k, 3);
    k = 0;
    CHECK(gc_read_float("0.12345678901234567890", &k, &v));   /* extra digits read and dropped */
    CHECK_NEAR(v, 0.12345679, 1e-7);
    CHECK_EQ(k, 22);
}

static void test_error_codes(void)
{
    host_reset();
    CHECK_EQ(parse("G0X1"), STATUS_OK);
    CHECK_EQ(parse("1"), STATUS_EXPECTED_COMMAND_LETTER);
    CHECK_EQ(parse("G0X1.5.3"), STATUS_EXPECTED_COMMAND_LETTER);
    CHECK_EQ(parse("G"), STATUS_BAD_NUMBER_FORMAT);
    CHECK_EQ(parse("X--1"), STATUS_BAD_NUMBER_FORMAT);
    CHECK_EQ(parse("G2X1"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("G38.2Z1"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("G20"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("M3"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("A1"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("G0G1X1"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(parse("G90G91"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(parse("X1X2"), STATUS_WORD_REPEATED);
    CHECK_EQ(parse("G4"), STATUS_VALUE_WORD_MISSING);
    CHECK_EQ(parse("G4P-1"), STATUS_NEGATIVE_VALUE);
    CHECK_EQ(parse("G4P601"), STATUS_MAX_VALUE_EXCEEDED);
    CHECK_EQ(parse("G4P1X1"), STATUS_AXIS_COMMAND_CONFLICT);
    CHECK_EQ(parse("F-5"), STATUS_NEGATIVE_VALUE);
    CHECK_EQ(parse("N-1G0"), STATUS_INVALID_LINE_NUMBER);
    CHECK_EQ(parse("N1.5G0"), STATUS_INVALID_LINE_NUMBER);
    CHECK_EQ(parse("N10G0X1"), STATUS_OK);
    CHECK_EQ(parse("P1"), STATUS_UNUSED_WORDS);
    CHECK_EQ(parse("S1"), STATUS_UNUSED_WORDS);
    CHECK_EQ(parse("M280S90"), STATUS_VALUE_WORD_MISSING);
    CHECK_EQ(parse("M280P0"), STATUS_VALUE_WORD_MISSING);
    CHECK_EQ(parse("M280P1S90"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("M280P0.5S90"), STATUS_COMMAND_VALUE_NOT_INTEGER);
    CHECK_EQ(parse("M280.5P0S90"), STATUS_COMMAND_VALUE_NOT_INTEGER);
    CHECK_EQ(parse("M280P0S181"), STATUS_INVALID_TARGET);
    CHECK_EQ(parse("M280P0S-1"), STATUS_INVALID_TARGET);
    CHECK_EQ(parse("M280P0S90X1"), STATUS_AXIS_COMMAND_CONFLICT);
    CHECK_EQ(parse("G4M280P0S1"), STATUS_MODAL_GROUP_VIOLATION);   /* both would take P */
    CHECK_EQ(parse("G4P1M280P0S1"), STATUS_WORD_REPEATED);
    CHECK_EQ(parse("G17G21G54G94"), STATUS_OK);
}

static void test_moves_in_steps(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G0X1Y2"), STATUS_OK);
    CHECK_EQ(motion_log.lines, 1);
    CHECK_EQ(motion_log.last_target[0], 400);   /* default 400 steps/mm */
    CHECK_EQ(motion_log.last_target[1], 800);
    CHECK(motion_log.last_rapid);
    CHECK_EQ(gc_execute_line("G91G1X-0.5F120"), STATUS_OK);
    CHECK_EQ(motion_log.last_target[0], 200);
    CHECK_NEAR(motion_log.last_feed, 120.0, 1e-6);
    CHECK(!motion_log.last_rapid);
    CHECK_EQ(gc_execute_line("X0.25"), STATUS_OK);   /* modal G1 G91 and F */
    CHECK_EQ(motion_log.last_target[0], 300);
    CHECK_EQ(gc_execute_line("G90X0.0025"), STATUS_OK);   /* rounds to the nearest step */
    CHECK_EQ(motion_log.last_target[0], 1);
}

static void test_feed_rules(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G1X1"), STATUS_UNDEFINED_FEED_RATE);
    CHECK_EQ(motion_log.lines, 0);
    CHECK_EQ(gc_execute_line("G1X1F0"), STATUS_UNDEFINED_FEED_RATE);
    CHECK_EQ(gc_execute_line("F50"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G1X1"), STATUS_OK);
    CHECK_NEAR(motion_log.last_feed, 50.0, 1e-6);
}

static void test_soft_limits_refuse_without_side_effects(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G0X70.001"), STATUS_OK);     /* 0.4 step past the end: within the half-step slack */
    host_reset();
    CHECK_EQ(gc_execute_line("G0X70.01"), STATUS_TRAVEL_EXCEEDED);
    CHECK_EQ(gc_execute_line("G0X-1"), STATUS_TRAVEL_EXCEEDED);
    CHECK_EQ(gc_execute_line("G91G1X-1F100"), STATUS_TRAVEL_EXCEEDED);
    CHECK_EQ(motion_log.lines, 0);
    CHECK(!gc.relative);                     /* the refused line's G91 and F did not take effect */
    CHECK_NEAR(gc.feed, 0.0, 0);
    CHECK_EQ(gc_execute_line("G0Z10"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G0Z10.1"), STATUS_TRAVEL_EXCEEDED);
    settings.flags &= (uint8_t)~FLAG_SOFT_LIMITS;
    CHECK_EQ(gc_execute_line("G0X-5"), STATUS_OK);
    CHECK_EQ(motion_log.last_target[0], -2000);
    CHECK_EQ(gc_execute_line("G0X99999999"), STATUS_INVALID_TARGET);   /* beyond int32 steps */
}

static void test_dwell_and_servo(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G4P0.25"), STATUS_OK);
    CHECK_EQ(motion_log.dwells, 1);
    CHECK_NEAR(motion_log.last_dwell_s, 0.25, 1e-6);
    CHECK_EQ(gc_execute_line("M280P0S90"), STATUS_OK);
    CHECK_EQ(motion_log.servos, 1);
    CHECK_NEAR(motion_log.last_servo_deg, 90.0, 1e-6);
    CHECK_EQ(gc_execute_line("M280P0S180"), STATUS_OK);
    CHECK_EQ(motion_log.lines, 0);
}

/* The safe-start lines CAM programs open with, and M1: accepted, nothing moves, each group once per line. */
static void test_single_mode_groups(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G17G21G40G49G61G90G94"), STATUS_OK);
    CHECK_EQ(gc_execute_line("M5M9"), STATUS_OK);
    CHECK_EQ(gc_execute_line("M1"), STATUS_OK);
    CHECK_EQ(motion_log.lines + motion_log.pauses + motion_log.program_ends, 0);
    CHECK_EQ(parse("G17G17"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(parse("G40G40"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(parse("M5M5"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(parse("M0M2"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(parse("G61.1"), STATUS_UNSUPPORTED_COMMAND);   /* GRBL: only G61 */
    CHECK_EQ(parse("G40.5"), STATUS_COMMAND_VALUE_NOT_INTEGER);
    CHECK_EQ(parse("M2.5"), STATUS_COMMAND_VALUE_NOT_INTEGER);
    CHECK_EQ(parse("M4"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("M7"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("M8"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(parse("M1000"), STATUS_UNSUPPORTED_COMMAND);
    CHECK_EQ(gc_parse_line("G91G40X1F10", &(gc_block_t){0}, 1), STATUS_INVALID_JOG_COMMAND);
    CHECK_EQ(gc_parse_line("G91X1F10M5", &(gc_block_t){0}, 1), STATUS_INVALID_JOG_COMMAND);
    CHECK_EQ(gc_parse_line("G91X1F10M30", &(gc_block_t){0}, 1), STATUS_INVALID_JOG_COMMAND);
}

/* G80 cancels the motion mode: axis words are refused until G0 or G1 (GRBL's error:31), even G92's. */
static void test_motion_cancel(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G80"), STATUS_OK);
    CHECK_EQ(gc.motion, MOTION_NONE);
    CHECK_EQ(gc_execute_line("X1"), STATUS_AXIS_WORDS_EXIST);
    CHECK_EQ(gc_execute_line("G92X0"), STATUS_AXIS_WORDS_EXIST);
    CHECK_EQ(gc_execute_line("G0G80X1"), STATUS_MODAL_GROUP_VIOLATION);
    CHECK_EQ(gc_execute_line("G80X1"), STATUS_AXIS_WORDS_EXIST);
    CHECK_EQ(motion_log.lines, 0);
    CHECK_EQ(gc_execute_line("G28"), STATUS_OK);      /* no axis words: to the stored position, mode kept */
    CHECK_EQ(gc.motion, MOTION_NONE);
    CHECK_EQ(gc_execute_line("G1X1F100"), STATUS_OK);
    CHECK_EQ(motion_log.last_target[0], 400);
}

/* M2 / M30 after the moves: G1 G90 G54 again, G92 and F kept; M0 pauses; check mode parses them as GRBL. */
static void test_program_flow(void)
{
    host_reset();
    CHECK_EQ(gc_execute_line("G10L2P2X5"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G55G91G0X1"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G92X0F300"), STATUS_OK);
    CHECK_EQ(gc_execute_line("G1X1M0"), STATUS_OK);   /* the move is queued first, then the pause */
    CHECK_EQ(motion_log.lines, 2);
    CHECK_EQ(motion_log.pauses, 1);
    float g92 = gc.g92[0];
    CHECK_EQ(gc_execute_line("M30"), STATUS_OK);
    CHECK_EQ(motion_log.syncs, 1);
    CHECK_EQ(motion_log.program_ends, 1);
    CHECK_EQ(gc.motion, MOTION_LINEAR);
    CHECK(!gc.relative);
    CHECK_EQ(gc.coord_select, 0);
    CHECK_NEAR(gc.coord_system[0], 0.0, 0);
    CHECK_NEAR(gc.g92[0], g92, 0);
    CHECK_NEAR(gc.feed, 300.0, 0);
    CHECK_EQ(gc_execute_line("G0G55X1M2"), STATUS_OK);   /* the move in G55, then the end */
    CHECK_EQ(motion_log.last_target[0], (int32_t)((1.0f + 5.0f + g92) * 400.0f + 0.5f));
    CHECK_EQ(gc.coord_select, 0);
    CHECK_EQ(motion_log.program_ends, 2);
    CHECK_EQ(gc_execute_line("G0X200M2"), STATUS_TRAVEL_EXCEEDED);   /* a refused line ends nothing */
    CHECK_EQ(motion_log.program_ends, 2);
}

int main(void)
{
    RUN(test_read_float);
    RUN(test_error_codes);
    RUN(test_moves_in_steps);
    RUN(test_feed_rules);
    RUN(test_soft_limits_refuse_without_side_effects);
    RUN(test_dwell_and_servo);
    RUN(test_single_mode_groups);
    RUN(test_motion_cancel);
    RUN(test_program_flow);
    return HARNESS_RESULT();
}
