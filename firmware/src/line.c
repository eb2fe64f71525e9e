/* line.c: byte-by-byte line assembly with a hard length bound, as GRBL's protocol loop does it. */
#include <string.h>
#include "line.h"

void line_reset(line_t *l)
{
    memset(l, 0, sizeof(*l));
}

static uint8_t finish(line_t *l)
{
    uint8_t result = l->overflow ? LINE_OVERFLOW : (l->garbage ? LINE_GARBAGE : LINE_READY);
    l->buf[l->len] = '\0';
    if (result != LINE_READY) {
        l->len = 0;
        l->buf[0] = '\0';
    }
    l->len = 0;
    l->in_paren = l->in_semi = l->overflow = l->garbage = 0;
    return result;
}

uint8_t line_push(line_t *l, uint8_t c)
{
    if (c == '\n' || c == '\r') {
        uint8_t crlf = (c == '\n' && l->after_cr);
        l->after_cr = (c == '\r');
        return crlf ? LINE_PENDING : finish(l);   /* CR LF counts as one line ending */
    }
    l->after_cr = 0;
    if (l->in_semi) {
        return LINE_PENDING;
    }
    if (l->in_paren) {
        l->in_paren = (c != ')');
        return LINE_PENDING;
    }
    if (c == ' ' || c == '\t') {
        return LINE_PENDING;
    }
    if (c == '(') {
        l->in_paren = 1;
        return LINE_PENDING;
    }
    if (c == ';') {
        l->in_semi = 1;
        return LINE_PENDING;
    }
    if (c < 0x20 || c >= 0x7F) {
        l->garbage = 1;
        return LINE_PENDING;
    }
    if (l->len >= LINE_BUFFER_SIZE) {
        l->overflow = 1;
        return LINE_PENDING;
    }
    if (c >= 'a' && c <= 'z') {
        c = (uint8_t)(c - 'a' + 'A');
    }
    l->buf[l->len++] = (char)c;
    return LINE_PENDING;
}
