/* startup.c: the startup-line records: the line with its terminator, zero-padded, and a checksum of it all,
 * stored bit-inverted so that a blank EEPROM reads as two valid empty lines (no writes at the first boot). */
#include <string.h>
#include "nvm.h"
#include "settings.h"
#include "startup.h"

#define TEXT_BYTES (LINE_BUFFER_SIZE + 1)

_Static_assert(STARTUP_ADDR + N_STARTUP_LINES * (TEXT_BYTES + 1) <= NVM_SIZE, "startup lines overrun the EEPROM");

static uint16_t record_addr(uint8_t n)
{
    return (uint16_t)(STARTUP_ADDR + n * (TEXT_BYTES + 1));
}

static void invert(uint8_t *p, uint8_t n)
{
    while (n--) {
        *p = (uint8_t)~*p;
        p++;
    }
}

uint8_t startup_read(uint8_t n, char *buf)
{
    uint8_t sum = 0;
    nvm_read(record_addr(n), buf, TEXT_BYTES);
    nvm_read((uint16_t)(record_addr(n) + TEXT_BYTES), &sum, 1);
    invert((uint8_t *)buf, TEXT_BYTES);
    invert(&sum, 1);
    if (sum == settings_checksum((const uint8_t *)buf, TEXT_BYTES) && memchr(buf, '\0', TEXT_BYTES)) {
        return 1;
    }
    buf[0] = '\0';
    return 0;
}

void startup_write(uint8_t n, const char *line)
{
    char text[TEXT_BYTES];
    size_t len = strlen(line);
    if (len > TEXT_BYTES - 1) len = TEXT_BYTES - 1;   /* the line buffer never holds more */
    memset(text, 0, sizeof(text));
    memcpy(text, line, len);
    uint8_t sum = (uint8_t)~settings_checksum((const uint8_t *)text, TEXT_BYTES);
    invert((uint8_t *)text, TEXT_BYTES);
    nvm_write(record_addr(n), text, TEXT_BYTES);
    nvm_write((uint16_t)(record_addr(n) + TEXT_BYTES), &sum, 1);
}

uint8_t startup_repair(void)
{
    char buf[TEXT_BYTES];
    uint8_t damaged = 0;
    for (uint8_t n = 0; n < N_STARTUP_LINES; n++) {
        if (!startup_read(n, buf)) {
            startup_write(n, "");
            damaged++;
        }
    }
    return damaged;
}

void startup_clear_all(void)
{
    for (uint8_t n = 0; n < N_STARTUP_LINES; n++) startup_write(n, "");
}
