/* line.h: assembles received bytes into bounded, normalised command lines (comments and spaces removed). */
#ifndef LINE_H
#define LINE_H
#include <stdint.h>
#include "config.h"

enum {
    LINE_PENDING = 0,   /* byte consumed, line not finished */
    LINE_READY,         /* a complete line is in buf (possibly empty) */
    LINE_OVERFLOW,      /* the line was longer than LINE_BUFFER_SIZE: answer error:11, it was discarded */
    LINE_GARBAGE,       /* the line held a control or non-ASCII byte: answer error:1, it was discarded */
};

typedef struct {
    char buf[LINE_BUFFER_SIZE + 1];
    uint8_t len;
    uint8_t in_paren;    /* inside a ( ... ) comment */
    uint8_t in_semi;     /* after a ; comment */
    uint8_t overflow;
    uint8_t garbage;
    uint8_t after_cr;    /* the previous byte was CR: a following LF ends nothing */
} line_t;

void line_reset(line_t *l);
/* Feed one byte; returns one of the LINE_* codes. After LINE_READY the caller reads l->buf. */
uint8_t line_push(line_t *l, uint8_t c);

#endif
