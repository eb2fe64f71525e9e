/* compat.h: lets the pure modules (line, gcode, planner, settings) build for the host as well as the AVR. */
#ifndef COMPAT_H
#define COMPAT_H

#ifdef __AVR__
#include <avr/pgmspace.h>
#include <util/atomic.h>
#define ATOMIC_SECTION ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
#else
#define PROGMEM
#define PSTR(s) (s)
#define pgm_read_byte(p) (*(const unsigned char *)(p))
#define ATOMIC_SECTION
#endif

#endif
