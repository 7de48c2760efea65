"""The peer of bench/journeys' send test: Python's smtplib handing N prepared messages of the
same shape to the same SMTP server over one connection. Prints JSON {"seconds": s}."""
import json
import smtplib
import sys
import time
from email.message import EmailMessage

port, n = int(sys.argv[1]), int(sys.argv[2])
msgs = []
for i in range(n):
    m = EmailMessage()
    m["From"] = "Shop <shop@example.org>"
    m["To"] = f"p{i}@example.org"
    m["Subject"] = "You left something in your cart"
    m["List-Unsubscribe"] = f"<https://candor.example/u/{i:043d}>, <mailto:unsubscribe@example.org>"
    m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    m.set_content("Hello,\n\nYou started a checkout and did not finish it.\n" * 8)
    m.add_alternative("<p>Hello,</p>\n<p>You started a checkout and did not finish it.</p>\n" * 8, subtype="html")
    msgs.append((f"p{i}@example.org", m.as_bytes(policy=m.policy.clone(linesep="\r\n"))))
start = time.perf_counter()
with smtplib.SMTP("127.0.0.1", port) as s:
    for to, raw in msgs:
        s.sendmail("shop@example.org", [to], raw)
print(json.dumps({"seconds": time.perf_counter() - start}))
