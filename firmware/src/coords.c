/* coords.c: coordinate records in EEPROM, checksummed one by one so a damaged record is found, not used.
 * Stored bit-inverted: a blank EEPROM (all 0xFF) then reads as valid all-zero records, so the first boot and a
 * clear write nothing (each changed EEPROM byte costs 3.4 ms, and the chip cannot listen while writing). */
#include <string.h>
#include "coords.h"
#include "nvm.h"
#include "settings.h"
#include "startup.h"

#define RECORD_BYTES (sizeof(float) * N_AXIS + 1)

_Static_assert(COORDS_ADDR + N_COORD_RECORDS * RECORD_BYTES <= STARTUP_ADDR, "coordinate records overlap the startup lines");
_Static_assert(SETTINGS_ADDR + sizeof(settings_t) + 2 <= COORDS_ADDR, "the settings block overlaps the coordinate records");

static uint16_t record_addr(uint8_t index)
{
    return (uint16_t)(COORDS_ADDR + index * RECORD_BYTES);
}

static void invert(uint8_t *p, uint8_t n)
{
    while (n--) {
        *p = (uint8_t)~*p;
        p++;
    }
}

uint8_t coords_read(uint8_t index, float out[N_AXIS])
{
    uint8_t raw[RECORD_BYTES];
    nvm_read(record_addr(index), raw, RECORD_BYTES);
    invert(raw, RECORD_BYTES);
    memcpy(out, raw, sizeof(float) * N_AXIS);
    if (raw[RECORD_BYTES - 1] == settings_checksum(raw, RECORD_BYTES - 1)) {
        return 1;
    }
    memset(out, 0, sizeof(float) * N_AXIS);
    return 0;
}

void coords_write(uint8_t index, const float in[N_AXIS])
{
    uint8_t raw[RECORD_BYTES];
    memcpy(raw, in, sizeof(float) * N_AXIS);
    raw[RECORD_BYTES - 1] = settings_checksum(raw, RECORD_BYTES - 1);
    invert(raw, RECORD_BYTES);
    nvm_write(record_addr(index), raw, RECORD_BYTES);
}

uint8_t coords_repair(void)
{
    uint8_t damaged = 0;
    float v[N_AXIS];
    for (uint8_t i = 0; i < N_COORD_RECORDS; i++) {
        if (!coords_read(i, v)) {
            coords_write(i, v);   /* coords_read zeroed it */
            damaged++;
        }
    }
    return damaged;
}

void coords_clear_all(void)
{
    const float zero[N_AXIS] = {0};
    for (uint8_t i = 0; i < N_COORD_RECORDS; i++) coords_write(i, zero);
}
