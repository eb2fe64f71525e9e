/* test_settings.c: defaults on a blank or damaged EEPROM, validation with GRBL's error numbers, persistence. */
#include <string.h>
#include "harness.h"
#include "host_stubs.h"
#include "settings.h"
#include "status.h"

static float get(uint16_t n)
{
    float v = -1.0f;
    CHECK(settings_get_value(n, &v));
    return v;
}

static void test_blank_eeprom_gives_defaults_and_writes_them(void)
{
    memset(fake_eeprom, 0xFF, sizeof(fake_eeprom));
    CHECK_EQ(settings_init(), 0);
    CHECK_NEAR(get(100), 400.0, 0);
    CHECK_EQ(fake_eeprom[SETTINGS_ADDR], SETTINGS_VERSION);
    CHECK_EQ(settings_init(), 1);   /* now valid */
}

static void test_values_persist_across_init(void)
{
    host_reset();
    CHECK_EQ(settings_store_value(100, 320.0f), STATUS_OK);
    CHECK_EQ(settings_store_value(131, 25.5f), STATUS_OK);
    CHECK_EQ(settings_store_value(201, 900.0f), STATUS_OK);
    settings_restore_defaults();   /* forget the RAM copy */
    CHECK_EQ(settings_init(), 1);
    CHECK_NEAR(get(100), 320.0, 0);
    CHECK_NEAR(get(131), 25.5, 1e-6);
    CHECK_NEAR(get(201), 900.0, 0);
}

static void test_damaged_block_restores_defaults(void)
{
    host_reset();
    CHECK_EQ(settings_store_value(100, 320.0f), STATUS_OK);
    fake_eeprom[SETTINGS_ADDR + 3] ^= 0x10;   /* flip one bit inside the block */
    CHECK_EQ(settings_init(), 0);
    CHECK_NEAR(get(100), 400.0, 0);
    host_reset();
    fake_eeprom[SETTINGS_ADDR] = SETTINGS_VERSION + 1;   /* a block of another firmware version */
    CHECK_EQ(settings_init(), 0);
}

static void test_checksum_sees_single_byte_changes(void)
{
    uint8_t data[64];
    for (int i = 0; i < 64; i++) data[i] = (uint8_t)(i * 7);
    uint8_t base = settings_checksum(data, sizeof(data));
    for (int i = 0; i < 64; i++) {
        data[i] ^= 0x01;
        CHECK(settings_checksum(data, sizeof(data)) != base);
        data[i] ^= 0x01;
    }
}

static void test_validation(void)
{
    host_reset();
    int writes = fake_eeprom_writes;
    CHECK_EQ(settings_store_value(100, -1.0f), STATUS_NEGATIVE_VALUE);
    CHECK_EQ(settings_store_value(100, 0.0f), STATUS_INVALID_STATEMENT);
    CHECK_EQ(settings_store_value(103, 1.0f), STATUS_INVALID_STATEMENT);   /* no fourth axis */
    CHECK_EQ(settings_store_value(7, 1.0f), STATUS_INVALID_STATEMENT);     /* no such setting */
    CHECK_EQ(settings_store_value(0, 2.0f), STATUS_SETTING_STEP_PULSE_MIN);
    CHECK_EQ(settings_store_value(0, 4.5f), STATUS_INVALID_STATEMENT);     /* not an integer */
    CHECK_EQ(settings_store_value(2, 8.0f), STATUS_INVALID_STATEMENT);     /* mask of three axes */
    CHECK_EQ(settings_store_value(20, 2.0f), STATUS_INVALID_STATEMENT);
    CHECK_EQ(settings_store_value(110, 6000.0f), STATUS_MAX_STEP_RATE_EXCEEDED);   /* 40 kHz */
    CHECK_EQ(settings_store_value(100, 3000.0f), STATUS_MAX_STEP_RATE_EXCEEDED);   /* 30 kHz at 600 */
    CHECK_EQ(settings_store_value(201, 2500.0f), STATUS_INVALID_STATEMENT);  /* above $202 */
    CHECK_EQ(settings_store_value(204, 0.0f), STATUS_INVALID_STATEMENT);
    CHECK_EQ(fake_eeprom_writes, writes);   /* nothing refused was written */
    CHECK_NEAR(get(100), 400.0, 0);
    CHECK_EQ(settings_store_value(22, 0.0f), STATUS_OK);
    settings.flags &= (uint8_t)~FLAG_SOFT_LIMITS;
    CHECK_EQ(settings_store_value(20, 1.0f), STATUS_SOFT_LIMIT_ERROR);   /* needs homing, as GRBL */
    CHECK_EQ(settings_store_value(22, 1.0f), STATUS_OK);
    CHECK_EQ(settings_store_value(20, 1.0f), STATUS_OK);
}

static void test_assignment_parsing(void)
{
    uint16_t n = 0;
    float v = 0;
    CHECK_EQ(settings_parse_assignment("$100=250.5", &n, &v), STATUS_OK);
    CHECK_EQ(n, 100);
    CHECK_NEAR(v, 250.5, 1e-6);
    CHECK_EQ(settings_parse_assignment("$100", &n, &v), STATUS_INVALID_STATEMENT);
    CHECK_EQ(settings_parse_assignment("$100=", &n, &v), STATUS_BAD_NUMBER_FORMAT);
    CHECK_EQ(settings_parse_assignment("$100=1X", &n, &v), STATUS_BAD_NUMBER_FORMAT);
    CHECK_EQ(settings_parse_assignment("$1.5=1", &n, &v), STATUS_INVALID_STATEMENT);
    CHECK_EQ(settings_parse_assignment("$-1=1", &n, &v), STATUS_INVALID_STATEMENT);
    CHECK_EQ(settings_parse_assignment("$1000=1", &n, &v), STATUS_INVALID_STATEMENT);
    CHECK_EQ(settings_parse_assignment("$Q=1", &n, &v), STATUS_INVALID_STATEMENT);
}

static void test_listing_covers_every_number(void)
{
    int count = 0;
    for (uint8_t i = 0;; i++) {
        uint16_t n = settings_number_at(i);
        if (n == 0xFFFF) break;
        float v;
        CHECK(settings_get_value(n, &v));
        count++;
    }
    CHECK_EQ(count, 31);
    float v;
    CHECK(!settings_get_value(6, &v));
}

int main(void)
{
    RUN(test_blank_eeprom_gives_defaults_and_writes_them);
    RUN(test_values_persist_across_init);
    RUN(test_damaged_block_restores_defaults);
    RUN(test_checksum_sees_single_byte_changes);
    RUN(test_validation);
    RUN(test_assignment_parsing);
    RUN(test_listing_covers_every_number);
    return HARNESS_RESULT();
}
