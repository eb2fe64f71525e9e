/* coords.h: the stored coordinate data of GRBL's `$#`: G54..G59 work offsets and the G28/G30 positions, each
 * an EEPROM record of three floats (machine mm) with its own checksum. */
#ifndef COORDS_H
#define COORDS_H
#include <stdint.h>
#include "config.h"

#define COORD_G28 6
#define COORD_G30 7
#define N_COORD_RECORDS 8
#define COORDS_ADDR 128   /* after the settings block (settings.h); 8 records of 13 bytes */

/* Read record `index` (0..5 = G54..G59, 6 = G28, 7 = G30); 0 when it is damaged (then out is all zero). */
uint8_t coords_read(uint8_t index, float out[N_AXIS]);
void coords_write(uint8_t index, const float in[N_AXIS]);
/* Rewrite every damaged record as zero (blank EEPROM, older firmware); returns how many were damaged. */
uint8_t coords_repair(void);
void coords_clear_all(void);

#endif
