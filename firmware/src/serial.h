/* serial.h: interrupt-driven UART0 at 115200 baud with bounded ring buffers; real-time bytes picked off. */
#ifndef SERIAL_H
#define SERIAL_H
#include <stdint.h>

void serial_init(void);
/* Next received byte, or -1 when none is waiting. */
int16_t serial_read(void);
uint8_t serial_rx_free(void);
void serial_reset_rx(void);
void serial_write(uint8_t c);
void serial_print_P(const char *flash_str);
void serial_print(const char *ram_str);

#endif
