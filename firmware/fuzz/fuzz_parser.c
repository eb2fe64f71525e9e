/* fuzz_parser.c: libFuzzer target for the line path: bytes -> line assembly -> G-code, $J= jog or $N=value
 * execution (work offsets, G10/G92/G28/G43.1 included) -> planner, with the invariants that must hold after every line (valid status, finite position within
 * travel, blocks consistent). Built by `make fuzz` with clang -fsanitize=fuzzer,address,undefined. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gcode.h"
#include "host_stubs.h"
#include "line.h"
#include "planner.h"
#include "settings.h"
#include "status.h"

static int valid_status(uint8_t s)
{
    return s <= STATUS_INVALID_TARGET + 5 || s == STATUS_MAX_VALUE_EXCEEDED;
}

static void check_invariants(uint8_t status, int moved)
{
    if (!valid_status(status)) abort();
    if (!isfinite(gc.tlo)) abort();
    for (int a = 0; a < N_AXIS; a++) {
        if (!isfinite(gc.position[a]) || !isfinite(gc.coord_system[a]) || !isfinite(gc.g92[a])) abort();
        /* a move accepted with soft limits on ends inside the travel (a later $10x change may rescale it) */
        float slack = 0.5f / settings.steps_per_mm[a] + 1e-4f;   /* the firmware allows half a step */
        if (moved && (settings.flags & FLAG_SOFT_LIMITS) &&
            (gc.position[a] < -slack || gc.position[a] > settings.max_travel[a] + slack)) abort();
    }
    const plan_block_t *b = plan_current();
    if (b) {
        uint32_t most = 0;
        for (int a = 0; a < N_AXIS; a++) if (b->steps[a] > most) most = b->steps[a];
        if (most != b->step_events || b->step_events == 0) abort();
        if (b->nominal_q16 < b->floor_q16 || b->nominal_q16 > (uint32_t)MAX_STEP_RATE << 16) abort();
        if (b->accel_q16_tick == 0) abort();
        if (b->step_events > (uint32_t)INT32_MAX) abort();   /* the Bresenham sums must not overflow */
    }
}

static void execute(const char *text)
{
    uint8_t status;
    int lines_before = motion_log.lines;
    if (text[0] == '$' && text[1] == 'J' && text[2] == '=') {
        status = gc_execute_jog(text + 3);
    } else if (text[0] == '$') {
        uint16_t n;
        float v;
        status = settings_parse_assignment(text, &n, &v);
        if (status == STATUS_OK) status = settings_store_value(n, v);
        if (status == STATUS_OK) {
            int32_t pos[N_AXIS];
            plan_get_position(pos);
            gc_sync_position(pos);
        }
    } else {
        status = gc_execute_line(text);
    }
    check_invariants(status, status == STATUS_OK && motion_log.lines > lines_before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static line_t line;
    host_reset();
    line_reset(&line);
    for (size_t i = 0; i < size; i++) {
        switch (line_push(&line, data[i])) {
        case LINE_READY:
            if (strlen(line.buf) > LINE_BUFFER_SIZE) abort();
            execute(line.buf);
            break;
        case LINE_OVERFLOW:
        case LINE_GARBAGE:
            if (line.buf[0] != '\0') abort();
            break;
        default:
            break;
        }
    }
    return 0;
}
