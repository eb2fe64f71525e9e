/* test_line.c: line assembly: normalisation, comments, CR LF, the length bound, garbage bytes. */
#include <string.h>
#include "harness.h"
#include "line.h"

static line_t l;

/* Feed a string; return the code of the last byte and leave the line in l.buf. */
static uint8_t feed(const char *s)
{
    uint8_t r = LINE_PENDING;
    for (; *s; s++) r = line_push(&l, (uint8_t)*s);
    return r;
}

static void test_normalises_case_and_spaces(void)
{
    line_reset(&l);
    CHECK_EQ(feed("g1 x1.5\ty-2 f100\n"), LINE_READY);
    CHECK(strcmp(l.buf, "G1X1.5Y-2F100") == 0);
}

static void test_comments_removed(void)
{
    line_reset(&l);
    CHECK_EQ(feed("G0 (move (not nested) X9\n"), LINE_READY);
    CHECK(strcmp(l.buf, "G0X9") == 0);
    CHECK_EQ(feed("G0 X1 ; the rest (ignored\n"), LINE_READY);
    CHECK(strcmp(l.buf, "G0X1") == 0);
    CHECK_EQ(feed("(unclosed comment\n"), LINE_READY);   /* a comment ends at the line's end */
    CHECK(strcmp(l.buf, "") == 0);
}

static void test_crlf_is_one_line_ending(void)
{
    line_reset(&l);
    int ready = 0;
    const char *s = "G0X1\r\nG0X2\r\n\n";
    for (; *s; s++) ready += line_push(&l, (uint8_t)*s) == LINE_READY;
    CHECK_EQ(ready, 3);   /* two lines and one empty line, not five */
    CHECK_EQ(feed("\r"), LINE_READY);
    CHECK_EQ(feed("\r"), LINE_READY);   /* CR CR: two (empty) lines */
}

static void test_overflow_discards_whole_line(void)
{
    line_reset(&l);
    char big[LINE_BUFFER_SIZE + 2];
    memset(big, '1', sizeof(big) - 1);
    big[0] = 'X';
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ(feed(big), LINE_PENDING);
    CHECK_EQ(feed("\n"), LINE_OVERFLOW);
    CHECK_EQ(feed("G0X1\n"), LINE_READY);   /* the next line is clean */
    CHECK(strcmp(l.buf, "G0X1") == 0);
}

static void test_exactly_max_length_is_accepted(void)
{
    line_reset(&l);
    char max[LINE_BUFFER_SIZE + 1];
    memset(max, '1', LINE_BUFFER_SIZE);
    max[0] = 'X';
    max[LINE_BUFFER_SIZE] = '\0';
    feed(max);
    CHECK_EQ(feed("\n"), LINE_READY);
    CHECK_EQ(strlen(l.buf), LINE_BUFFER_SIZE);
    /* spaces and comments do not count toward the bound */
    feed("X   (a long comment that is longer than nothing at all, really quite long indeed....)");
    CHECK_EQ(feed("1\n"), LINE_READY);
}

static void test_garbage_bytes(void)
{
    line_reset(&l);
    CHECK_EQ(line_push(&l, 'G'), LINE_PENDING);
    CHECK_EQ(line_push(&l, 0x00), LINE_PENDING);
    CHECK_EQ(line_push(&l, 0xC3), LINE_PENDING);
    CHECK_EQ(line_push(&l, '\n'), LINE_GARBAGE);
    CHECK_EQ(feed("G0\n"), LINE_READY);
    CHECK(strcmp(l.buf, "G0") == 0);
    CHECK_EQ(feed("\x7f\n"), LINE_GARBAGE);
}

int main(void)
{
    RUN(test_normalises_case_and_spaces);
    RUN(test_comments_removed);
    RUN(test_crlf_is_one_line_ending);
    RUN(test_overflow_discards_whole_line);
    RUN(test_exactly_max_length_is_accepted);
    RUN(test_garbage_bytes);
    return HARNESS_RESULT();
}
