/* nvm.c: the settings store on the ATmega328P's EEPROM (update, so unchanged bytes are not rewritten). */
#include <avr/eeprom.h>
#include <avr/wdt.h>
#include "nvm.h"

void nvm_read(uint16_t addr, void *dst, uint16_t len)
{
    eeprom_read_block(dst, (const void *)(uintptr_t)addr, len);
}

void nvm_write(uint16_t addr, const void *src, uint16_t len)
{
    /* one byte at a time, feeding the watchdog: a full block takes about 3.4 ms per changed byte */
    const uint8_t *p = (const uint8_t *)src;
    for (uint16_t i = 0; i < len; i++) {
        eeprom_update_byte((uint8_t *)(uintptr_t)(addr + i), p[i]);
        wdt_reset();
    }
}
