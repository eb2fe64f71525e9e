/* nvm.h: byte access to the non-volatile settings store (the AVR EEPROM; a RAM array in host tests). */
#ifndef NVM_H
#define NVM_H
#include <stdint.h>

#define NVM_SIZE 1024u

void nvm_read(uint16_t addr, void *dst, uint16_t len);
void nvm_write(uint16_t addr, const void *src, uint16_t len);

#endif
