"""AppTest entry for one page: the same shell as app.py, then the page named by PAGE.

AppTest does not follow st.navigation reliably (streamlit#9446): widgets outside the page vanish
after the first re-run. Running shell + page directly keeps tests close to the real app.
"""
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.shell import render_shell, run_guarded  # noqa: E402

PAGE = os.environ.get("STREAMCHAT_TEST_PAGE", "chat")
run_guarded(lambda: (render_shell(PAGE),
                     runpy.run_path(str(ROOT / "pages" / f"{PAGE}.py"), run_name="__page__")))
