/* config.h: compile-time options of the tppscan stage firmware, with checks that they fit the chip. */
#ifndef CONFIG_H
#define CONFIG_H

#define FW_BANNER        "Grbl 1.1h ['$' for help]"   /* what GRBL hosts look for on reset */
#define FW_VERSION       "1.1h.20261121"              /* GRBL-style version.builddate for $I */
#define FW_BUILD_INFO    "tppscan-stage"              /* the build-info field of $I */

#define BAUD_RATE        115200UL
#define RX_BUFFER_SIZE   128    /* bytes; power of two (GRBL uses 128 as well) */
#define TX_BUFFER_SIZE   128    /* bytes; power of two */
#define LINE_BUFFER_SIZE 80     /* longest accepted line, excluding the line ending (as GRBL) */
#define PLANNER_BLOCKS   8      /* queued moves; power of two */

#define STEP_TICK_HZ     10000UL  /* fixed step-interrupt rate: the highest step rate per axis (see firmware.md) */
#define MAX_STEP_RATE    STEP_TICK_HZ
#define MIN_STEP_RATE    20UL     /* floor of the ramp, in step events per second */
#define SERVO_PERIOD_US  20000UL  /* 50 Hz hobby-servo frame */
#define WATCHDOG_TIMEOUT WDTO_250MS
#define HOMING_MAX_EXTRA 1.5f     /* homing seek gives up after 1.5 x max travel */

#define N_AXIS 3
#define X_AXIS 0
#define Y_AXIS 1
#define Z_AXIS 2

#if (RX_BUFFER_SIZE & (RX_BUFFER_SIZE - 1)) || RX_BUFFER_SIZE > 256
#error "RX_BUFFER_SIZE must be a power of two no larger than 256"
#endif
#if (TX_BUFFER_SIZE & (TX_BUFFER_SIZE - 1)) || TX_BUFFER_SIZE > 256
#error "TX_BUFFER_SIZE must be a power of two no larger than 256"
#endif
#if (PLANNER_BLOCKS & (PLANNER_BLOCKS - 1)) || PLANNER_BLOCKS > 64
#error "PLANNER_BLOCKS must be a power of two no larger than 64"
#endif
#if LINE_BUFFER_SIZE < 40 || LINE_BUFFER_SIZE > 250
#error "LINE_BUFFER_SIZE must lie in 40..250"
#endif
#if STEP_TICK_HZ > 40000UL
#error "STEP_TICK_HZ above 40 kHz leaves the 16 MHz CPU no time for the parser"
#endif

#endif
