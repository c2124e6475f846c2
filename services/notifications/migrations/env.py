from services.runtime.alembic_env import run

run()
