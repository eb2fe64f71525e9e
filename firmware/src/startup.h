/* startup.h: GRBL's two startup lines ($N0, $N1), kept in EEPROM and run after every reset that does not end
 * in Alarm, and after a successful $H. */
#ifndef STARTUP_H
#define STARTUP_H
#include <stdint.h>
#include "config.h"

#define N_STARTUP_LINES 2
#define STARTUP_ADDR 256   /* after the coordinate records (coords.h): 2 records of LINE_BUFFER_SIZE + 2 bytes */

/* Read line n into buf (LINE_BUFFER_SIZE + 1 bytes); 0 when the record is damaged (then buf is empty). */
uint8_t startup_read(uint8_t n, char *buf);
void startup_write(uint8_t n, const char *line);
/* Empty every damaged record; returns how many were damaged. */
uint8_t startup_repair(void);
void startup_clear_all(void);

#endif
