; tppscan stage: a G-code program for the streaming-sender transcript test (tests/stage/test_transcript.py).
; The board powers up locked (homing enabled, fresh EEPROM), so the program unlocks it first.
%
$X                      ; unlock without homing
G21 G90                 ; mm, absolute
G1 X2 Y1 F300           ; a linear move with a feed rate

G91                     ; relative from here
G1 X-0.5 Y0.75          (feed rate is modal)
G4 P0.1                 ; dwell: answered after the buffer has run
M280 P0 S45             ; focus servo to 45 degrees
G90
G0 X1.5 Y0.25           ; rapid back, absolute
G1 X100 F300            ; beyond the 70 mm X travel: error:15, the sender stops here
G0 X0 Y0                ; only sent when told to keep going
%
